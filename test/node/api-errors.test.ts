import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ContextNotFoundError, InvalidContextIdError } from '../../crdt/index.ts'
import { ERROR_STATUS, statusOf } from '../../node/api/errors.ts'
import { InviterUnreachableError, WrongSecretError } from '../../protocol/index.ts'
import { AgentFailedError, AgentTimedOutError, ImportNotGrantedError } from '../../sandbox/index.ts'

describe('API error table', () => {
  it('keys every class by the code its instances carry as name', () => {
    for (const [cls, status] of ERROR_STATUS) {
      const err = new (cls as unknown as new (message: string) => Error)('m')
      assert.equal(err.name, cls.code, `${cls.name}: static code and name agree`)
      assert.equal(statusOf(err), status)
    }
    const codes = ERROR_STATUS.map(([cls]) => cls.code)
    assert.equal(new Set(codes).size, codes.length, 'no class is listed twice')
  })

  it('says whose fault an error is', () => {
    assert.equal(statusOf(new InvalidContextIdError('bad id')), 400)
    assert.equal(statusOf(new ImportNotGrantedError('wasi:http/outgoing-handler', 'not granted')), 403)
    assert.equal(statusOf(new ContextNotFoundError('none')), 404)
    assert.equal(statusOf(new WrongSecretError('wrong')), 409)
    assert.equal(statusOf(new AgentFailedError('agent said no')), 422)
    assert.equal(statusOf(new InviterUnreachableError('away')), 502)
    assert.equal(statusOf(new AgentTimedOutError('slow')), 504)
  })

  it('matches by code, so an error rebuilt from a worker thread maps the same', () => {
    const revived = new Error('agent said no')
    revived.name = 'AgentFailed'
    assert.equal(statusOf(revived), 422)
  })

  it('leaves the node\'s own failures unmapped (500)', () => {
    assert.equal(statusOf(new Error('disk on fire')), undefined)
    assert.equal(statusOf(new TypeError('bug')), undefined)
    assert.equal(statusOf('not an error'), undefined)
  })
})
