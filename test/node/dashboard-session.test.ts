// The dashboard's login codes and sessions on their own, on a clock the test moves: a code
// works once and only within its lifetime, a session ends at its lifetime, and the cookie says
// HttpOnly and SameSite=Strict under a name of the API's own port.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { opener } from '../../node/commands/dashboard.ts'
import { LOGIN_CODE_TTL_MS, MAX_LOGIN_CODES, SESSION_TTL_MS, createSessions } from '../../node/api/session.ts'

function clocked (): { sessions: ReturnType<typeof createSessions>, advance: (ms: number) => void } {
  let t = 1_000_000
  return { sessions: createSessions({ port: () => 8765, now: () => t }), advance: (ms) => { t += ms } }
}

const cookieOf = (setCookie: string): string => setCookie.split(';')[0] as string

describe('dashboard login codes and sessions', () => {
  it('a code works once, and the session it gives is a cookie for this port only, HttpOnly and SameSite=Strict', () => {
    const { sessions } = clocked()
    const { code } = sessions.issueCode()
    const session = sessions.redeem(code)
    assert.ok(session !== undefined)
    assert.equal(sessions.redeem(code), undefined, 'a second use is refused')
    const set = sessions.setCookie(session)
    assert.match(set, /^hive_session_8765=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/)
    assert.equal(sessions.check(cookieOf(set)), true)
    assert.equal(sessions.check(`other=1; ${cookieOf(set)}`), true, 'found among other cookies')
    assert.equal(sessions.check(cookieOf(set).replace('8765', '8766')), false, 'another port\'s cookie is not this one')
    assert.equal(sessions.check(undefined), false)
    assert.equal(sessions.check(`hive_session_8765=${'0'.repeat(64)}`), false, 'a session never issued')
  })

  it(`a code is refused after ${LOGIN_CODE_TTL_MS / 1000} s, and a session ends after ${SESSION_TTL_MS / 3_600_000} h or at logout`, () => {
    const { sessions, advance } = clocked()
    const late = sessions.issueCode()
    advance(LOGIN_CODE_TTL_MS)
    assert.equal(sessions.redeem(late.code), undefined)
    const session = sessions.redeem(sessions.issueCode().code)
    assert.ok(session !== undefined)
    const cookie = cookieOf(sessions.setCookie(session))
    advance(SESSION_TTL_MS - 1)
    assert.equal(sessions.check(cookie), true)
    advance(1)
    assert.equal(sessions.check(cookie), false)
    const next = cookieOf(sessions.setCookie(sessions.redeem(sessions.issueCode().code) ?? ''))
    sessions.end(next)
    assert.equal(sessions.check(next), false)
    assert.match(sessions.clearCookie(), /Max-Age=0/)
  })

  it(`keeps at most ${MAX_LOGIN_CODES} unused codes, the oldest dropped; garbage is no code`, () => {
    const { sessions } = clocked()
    const first = sessions.issueCode()
    for (let i = 0; i < MAX_LOGIN_CODES; i++) sessions.issueCode()
    assert.equal(sessions.redeem(first.code), undefined)
    for (const garbage of ['', 'x', 'A'.repeat(64), `${first.code}0`]) assert.equal(sessions.redeem(garbage), undefined)
  })
})

describe('hive-node dashboard opens a browser only where there is a display', () => {
  it('xdg-open with a display on Linux, open on macOS, else none (the address is printed)', () => {
    assert.equal(opener({ DISPLAY: ':0' }, 'linux'), 'xdg-open')
    assert.equal(opener({ WAYLAND_DISPLAY: 'wayland-0' }, 'linux'), 'xdg-open')
    assert.equal(opener({}, 'linux'), undefined)
    assert.equal(opener({}, 'darwin'), 'open')
    assert.equal(opener({ DISPLAY: ':0' }, 'win32'), undefined)
  })
})
