import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { firstRoundWhy } from '../../../protocol/placement/explanation.ts'

describe('explain: why the first round\'s winner won', () => {
  const award = { winner: 'a', cost: 32.1, excluded: [] as string[] }

  it('says lowest cost when no other bid cost the same', () => {
    assert.equal(firstRoundWhy([{ bidder: 'a', cost: 32.1 }, { bidder: 'b', cost: 40 }], award), 'lowest cost among the bids')
  })

  it('says the tie-break decided when two bids cost the same', () => {
    assert.match(firstRoundWhy([{ bidder: 'a', cost: 32.1 }, { bidder: 'b', cost: 32.1 }], award), /^a tie at cost 32\.1 with 1 other bid, broken by the lowest SHA-256/)
  })

  it('does not count an excluded bidder as a tie', () => {
    assert.equal(firstRoundWhy([{ bidder: 'a', cost: 32.1 }, { bidder: 'b', cost: 32.1 }], { ...award, excluded: ['b'] }), 'lowest cost among the bids')
  })
})
