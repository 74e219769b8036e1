import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { hasGcc } from '../../native-shims/cprobe.js'
import { koffi } from '../../native-shims/koffi.js'
import { ABI_STRUCTS, KVM_IOCTL, kvm_lapic_state, kvm_userspace_memory_region, RUN_OFFSETS } from '../../native-shims/kvm/abi.js'
import { abiFacts, compareFacts, compilerFacts } from '../../native-shims/kvm/abi-check.js'

const goldenFile = fileURLToPath(new URL('../../native-shims/kvm/abi.golden.json', import.meta.url))

const KVM_H = '/usr/include/linux/kvm.h'
const noCompilerReason =
  process.arch !== 'x64'
    ? `arch is ${process.arch}, the declarations are x86-64`
    : !fs.existsSync(KVM_H)
      ? `${KVM_H} is missing (apt-get install linux-libc-dev)`
      : !hasGcc()
        ? 'gcc is missing (apt-get install gcc)'
        : undefined
if (noCompilerReason) console.warn(`skipping the gcc ABI check: ${noCompilerReason}`)

describe('KVM ABI declarations', () => {
  it.skipIf(noCompilerReason !== undefined)('match gcc and linux/kvm.h fact by fact', () => {
    const facts = abiFacts()
    const { compared, mismatches } = compareFacts(facts, compilerFacts(facts))
    console.log(`compared ${compared} ABI facts with gcc (${Object.keys(ABI_STRUCTS).length} structs)`)
    expect(mismatches).toEqual([])
    expect(compared).toBe(facts.length)
  })

  it('match the committed golden facts', () => {
    const facts = abiFacts()
    const golden = JSON.parse(fs.readFileSync(goldenFile, 'utf8')) as Record<string, number>
    const { compared, mismatches } = compareFacts(facts, golden)
    console.log(`compared ${compared} ABI facts with ${goldenFile}`)
    expect(mismatches).toEqual([])
    expect(compared).toBe(facts.length)
  })

  it('give the request numbers and sizes known from a real kernel', () => {
    expect(KVM_IOCTL).toMatchObject({
      GET_API_VERSION: 0xae00,
      CREATE_VM: 0xae01,
      GET_VCPU_MMAP_SIZE: 0xae04,
      GET_SUPPORTED_CPUID: 0xc008ae05,
      CREATE_VCPU: 0xae41,
      SET_USER_MEMORY_REGION: 0x4020ae46,
      SET_TSS_ADDR: 0xae47,
      SET_IDENTITY_MAP_ADDR: 0x4008ae48,
      IRQFD: 0x4020ae76,
      IOEVENTFD: 0x4040ae79,
      RUN: 0xae80,
      GET_REGS: 0x8090ae81,
      SET_REGS: 0x4090ae82,
      GET_SREGS: 0x8138ae83,
      SET_SREGS: 0x4138ae84,
      SET_MSRS: 0x4008ae89,
      SET_LAPIC: 0x4400ae8f,
      SET_CPUID2: 0x4008ae90,
      CREATE_IRQCHIP: 0xae60,
      IRQ_LINE: 0x4008ae61,
      CREATE_PIT2: 0x4040ae77,
      SET_GSI_ROUTING: 0x4008ae6a,
    })
    const sizes = Object.fromEntries(Object.entries(ABI_STRUCTS).map(([name, t]) => [name, t.size]))
    expect(sizes).toMatchObject({
      kvm_regs: 144,
      kvm_sregs: 312,
      kvm_run: 2352,
      kvm_userspace_memory_region: 32,
      kvm_cpuid_entry2: 40,
      kvm_msr_entry: 16,
      kvm_irqfd: 32,
      kvm_ioeventfd: 64,
      kvm_pit_config: 64,
      kvm_lapic_state: 1024,
      kvm_irq_routing_entry: 48,
      kvm_cpuid2: 8,
      kvm_msrs: 8,
      kvm_irq_routing: 8,
    })
    expect(RUN_OFFSETS).toMatchObject({
      immediate_exit: 1,
      exit_reason: 8,
      io_direction: 32,
      io_size: 33,
      io_port: 34,
      io_count: 36,
      io_data_offset: 40,
      mmio_phys_addr: 32,
      mmio_data: 40,
      mmio_len: 48,
      mmio_is_write: 52,
      system_event_type: 32,
      s: 2352 - 2048,
    })
  })

  it('encode structs at the offsets the kernel reads', () => {
    const buf = Buffer.alloc(kvm_userspace_memory_region.size)
    koffi().encode(buf, kvm_userspace_memory_region, {
      slot: 3,
      flags: 2,
      guest_phys_addr: 0x1_0000_0000,
      memory_size: 0x4000_0000,
      userspace_addr: 0x7f12_3456_7000n,
    })
    expect(buf.readUInt32LE(0)).toBe(3)
    expect(buf.readUInt32LE(4)).toBe(2)
    expect(buf.readBigUInt64LE(8)).toBe(0x1_0000_0000n)
    expect(buf.readBigUInt64LE(16)).toBe(0x4000_0000n)
    expect(buf.readBigUInt64LE(24)).toBe(0x7f12_3456_7000n)

    const lapic = Buffer.alloc(kvm_lapic_state.size)
    lapic[0x20] = 0x12 // APIC ID register
    const decoded = koffi().decode(lapic, kvm_lapic_state) as { regs: Uint8Array }
    expect(decoded.regs).toBeInstanceOf(Uint8Array)
    expect(decoded.regs[0x20]).toBe(0x12)
  })
})
