import fs from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { findDebianMirror, parseAptSources, parseOsRelease, parsePolicyCandidate, readSystemSourceFiles, renderExtraSources } from '../../src/kernel/apt-sources.js'
import { tempDir } from './helpers.js'

// Host names below are sample data for the parser, not sources the project uses.
const DEB822 = `Types: deb
# http://snapshot.example.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main
Enabled: no
`

const ONE_LINE = `# comment
deb [arch=amd64 signed-by=/etc/apt/keyrings/x.gpg] https://other.example.org/apt stable main
deb http://old.example.org/debian/ bookworm main contrib non-free-firmware
deb-src http://old.example.org/debian/ bookworm main
`

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

describe('apt sources', () => {
  it('parses deb822 stanzas, skipping disabled ones', () => {
    const s = parseAptSources([{ path: '/etc/apt/sources.list.d/debian.sources', text: DEB822 }])
    expect(s).toHaveLength(2)
    expect(s[0]).toMatchObject({
      types: ['deb'],
      uris: ['http://mirror.example.org/debian'],
      suites: ['bookworm', 'bookworm-updates'],
      components: ['main'],
      signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
    })
  })

  it('parses one-line entries with options', () => {
    const s = parseAptSources([{ path: '/etc/apt/sources.list', text: ONE_LINE }])
    expect(s.map((e) => [e.types[0], e.uris[0], e.suites[0]])).toEqual([
      ['deb', 'https://other.example.org/apt', 'stable'],
      ['deb', 'http://old.example.org/debian/', 'bookworm'],
      ['deb-src', 'http://old.example.org/debian/', 'bookworm'],
    ])
    expect(s[0]!.signedBy).toBe('/etc/apt/keyrings/x.gpg')
  })

  it('finds the mirror serving the release codename (not -security), and renders extra suites for it', () => {
    const sources = parseAptSources([
      { path: '/etc/apt/sources.list', text: ONE_LINE.split('\n').slice(0, 2).join('\n') },
      { path: '/etc/apt/sources.list.d/debian.sources', text: DEB822 },
    ])
    const mirror = findDebianMirror(sources, 'bookworm')
    expect(mirror).toEqual({ uri: 'http://mirror.example.org/debian', signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg' })
    expect(renderExtraSources(mirror!, ['trixie', 'bookworm-backports'])).toBe(
      'Types: deb\nURIs: http://mirror.example.org/debian\nSuites: trixie bookworm-backports\nComponents: main\n' + 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n',
    )
    expect(findDebianMirror(parseAptSources([{ path: 'x.list', text: ONE_LINE }]), 'bookworm')).toEqual({ uri: 'http://old.example.org/debian/' })
    expect(findDebianMirror(sources, 'trixie')).toBeUndefined()
  })

  it('reads sources.list and *.list/*.sources, not disabled files', () => {
    const etc = tempDir()
    dirs.push(etc)
    fs.mkdirSync(path.join(etc, 'sources.list.d'))
    fs.writeFileSync(path.join(etc, 'sources.list.d', 'debian.sources'), DEB822)
    fs.writeFileSync(path.join(etc, 'sources.list.d', 'x.list.disabled-by-someone'), ONE_LINE)
    fs.writeFileSync(path.join(etc, 'sources.list.d', 'y.list'), ONE_LINE)
    expect(readSystemSourceFiles(etc).map((f) => path.basename(f.path))).toEqual(['debian.sources', 'y.list'])
  })

  it('parses os-release and apt-cache policy', () => {
    expect(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n')).toEqual({
      id: 'debian',
      codename: 'bookworm',
    })
    const policy = 'linux-source-6.12:\n  Installed: (none)\n  Candidate: 6.12.117-1~deb12u1\n  Version table:\n'
    expect(parsePolicyCandidate(policy)).toBe('6.12.117-1~deb12u1')
    expect(parsePolicyCandidate('foo:\n  Installed: (none)\n  Candidate: (none)\n')).toBeUndefined()
    expect(parsePolicyCandidate('')).toBeUndefined()
  })
})
