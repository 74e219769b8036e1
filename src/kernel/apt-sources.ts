import fs from 'node:fs'
import path from 'node:path'

/** One apt source entry, from deb822 `.sources` stanzas or one-line `deb URI SUITE COMPONENTS` lists. */
export interface AptSource {
  types: string[]
  uris: string[]
  suites: string[]
  components: string[]
  signedBy?: string
  file: string
}

export interface SourceFile {
  path: string
  text: string
}

function parseDeb822(text: string, file: string): AptSource[] {
  const out: AptSource[] = []
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>()
    let last: string | undefined
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`) // continuation line
        continue
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line)
      if (m) fields.set((last = m[1]!.toLowerCase()), m[2]!.trim())
    }
    if (!fields.has('uris') || fields.get('enabled')?.toLowerCase() === 'no') continue
    const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean)
    const entry: AptSource = { types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components'), file }
    const signedBy = fields.get('signed-by')
    if (signedBy && !signedBy.includes('-----BEGIN')) entry.signedBy = signedBy
    out.push(entry)
  }
  return out
}

function parseOneLine(text: string, file: string): AptSource[] {
  const out: AptSource[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim()
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line)
    if (!m) continue
    const entry: AptSource = { types: [m[1]!], uris: [m[3]!], suites: [m[4]!], components: m[5]!.split(/\s+/).filter(Boolean), file }
    const signedBy = /signed-by=(\S+)/.exec(m[2] ?? '')?.[1]
    if (signedBy) entry.signedBy = signedBy
    out.push(entry)
  }
  return out
}

export function parseAptSources(files: SourceFile[]): AptSource[] {
  return files.flatMap((f) => (f.path.endsWith('.sources') ? parseDeb822(f.text, f.path) : parseOneLine(f.text, f.path)))
}

/** The machine's apt source files: sources.list and sources.list.d/*.list|*.sources (disabled ones are skipped by name). */
export function readSystemSourceFiles(etcApt = '/etc/apt'): SourceFile[] {
  const files: string[] = [path.join(etcApt, 'sources.list')]
  try {
    for (const n of fs.readdirSync(path.join(etcApt, 'sources.list.d')).sort())
      if (n.endsWith('.list') || n.endsWith('.sources')) files.push(path.join(etcApt, 'sources.list.d', n))
  } catch {
    // no sources.list.d
  }
  return files.flatMap((p) => {
    try {
      return [{ path: p, text: fs.readFileSync(p, 'utf8') }]
    } catch {
      return []
    }
  })
}

export interface DebianMirror {
  uri: string
  signedBy?: string
}

/**
 * The Debian archive this machine already uses: the binary (`deb`) entry whose suites include the
 * release's own codename (e.g. `bookworm`, not `bookworm-security`) and whose components include main.
 */
export function findDebianMirror(sources: AptSource[], codename: string): DebianMirror | undefined {
  const hit = sources.find((s) => s.types.includes('deb') && s.suites.includes(codename) && s.components.includes('main'))
  if (!hit?.uris[0]) return undefined
  const mirror: DebianMirror = { uri: hit.uris[0] }
  if (hit.signedBy) mirror.signedBy = hit.signedBy
  return mirror
}

export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'

/** A deb822 source file for extra suites of the same mirror (used only through a private apt state). */
export function renderExtraSources(mirror: DebianMirror, suites: string[]): string {
  return ['Types: deb', `URIs: ${mirror.uri}`, `Suites: ${suites.join(' ')}`, 'Components: main', `Signed-By: ${mirror.signedBy ?? DEBIAN_KEYRING}`, ''].join('\n')
}

/** `ID` and `VERSION_CODENAME` from /etc/os-release text. */
export function parseOsRelease(text: string): { id?: string; codename?: string } {
  const field = (k: string) => new RegExp(`^${k}=("?)(.*)\\1$`, 'm').exec(text)?.[2]
  const out: { id?: string; codename?: string } = {}
  const id = field('ID')
  const codename = field('VERSION_CODENAME')
  if (id) out.id = id
  if (codename) out.codename = codename
  return out
}

/** `Candidate:` of `apt-cache policy PKG` output, or undefined when there is none. */
export function parsePolicyCandidate(policyOutput: string): string | undefined {
  const c = /^\s*Candidate:\s*(\S+)/m.exec(policyOutput)?.[1]
  return c && c !== '(none)' ? c : undefined
}
