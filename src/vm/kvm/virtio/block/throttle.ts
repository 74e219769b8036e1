// Token buckets for request rate limiting (IOPS and bytes per second, each with a burst).
// A bucket never refuses: taking more than it holds leaves it in debt and returns how long to
// wait until the debt is paid back, so a throttled request is delayed, never failed. Callers take
// tokens only for requests that passed validation.

/** Milliseconds from an arbitrary origin; injectable for tests. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => performance.now() }

export interface BucketOptions {
  /** Tokens added per second. */
  readonly rate: number
  /** Most tokens the bucket holds (and starts with). */
  readonly burst: number
}

export class TokenBucket {
  private tokens: number
  private last: number

  constructor(
    readonly options: BucketOptions,
    private readonly clock: Clock = systemClock,
  ) {
    if (!(options.rate > 0) || !Number.isFinite(options.rate)) throw new RangeError(`token bucket rate ${options.rate} must be a positive number`)
    if (!(options.burst >= 0) || !Number.isFinite(options.burst)) throw new RangeError(`token bucket burst ${options.burst} must be a number ≥ 0`)
    this.tokens = options.burst
    this.last = clock.now()
  }

  private refill(): void {
    const now = this.clock.now()
    if (now > this.last) this.tokens = Math.min(this.options.burst, this.tokens + ((now - this.last) * this.options.rate) / 1000)
    this.last = Math.max(this.last, now)
  }

  /** Tokens available now (negative while in debt). */
  available(): number {
    this.refill()
    return this.tokens
  }

  /** Takes `n` tokens and returns the milliseconds to wait before using them (0 if covered). */
  take(n: number): number {
    this.refill()
    this.tokens -= n
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.options.rate
  }
}

export interface ThrottleOptions {
  /** Requests per second. */
  readonly iops?: BucketOptions
  /** Data bytes per second (reads and writes). */
  readonly bytesPerSec?: BucketOptions
}

export class Throttle {
  private readonly ops: TokenBucket | undefined
  private readonly bytes: TokenBucket | undefined

  constructor(options: ThrottleOptions, clock: Clock = systemClock) {
    this.ops = options.iops && new TokenBucket(options.iops, clock)
    this.bytes = options.bytesPerSec && new TokenBucket(options.bytesPerSec, clock)
  }

  /** Charges one request moving `bytes` data bytes; returns the milliseconds it must wait. */
  admit(bytes: number): number {
    const a = this.ops?.take(1) ?? 0
    const b = bytes > 0 ? (this.bytes?.take(bytes) ?? 0) : 0
    return Math.max(a, b)
  }
}
