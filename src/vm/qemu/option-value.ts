/** A value inside a QEMU option string (`-chardev socket,path=…`): a comma is written as two. */
export function qemuOptionValue(value: string): string {
  return value.replace(/,/g, ',,')
}
