/** The message a failing `expect(...)` throws; throws itself if the assertion passed. */
export function failure(fn: () => void): string {
  try {
    fn()
  } catch (e) {
    return (e as Error).message
  }
  throw new Error('expected the assertion to fail')
}
