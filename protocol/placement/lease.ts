// WinnerWatch: how a submitter notices that the winner of a round is gone. Two triggers, one
// deadline: the winner's lease, renewed by its claim and every renewal, and a grace that starts
// when its last connection to this node closes (or when it is awarded while not connected). A
// dead device cannot renew, but waiting a whole lease for that is slow: a winner that stays
// disconnected through the grace loses the task at once. The lease stays the fallback for a
// winner that is connected but stuck. A winner that comes back later finds its round over.

export type LostReason = 'lapsed' | 'disconnected'

export interface WinnerWatchInit {
  graceMs: number
  /** Whether this node holds a connection to a peer now. */
  connected: (peer: string) => boolean
  /** The winner of `round` lost the task. Called once per round at most. */
  onLost: (reason: LostReason, winner: string, round: number) => void
  /** The grace started or ended (the winner disconnected or came back). */
  onGrace?: (state: 'started' | 'ended', winner: string, round: number) => void
}

/** Lets a lease run a few milliseconds past its end before calling it lapsed. */
const LEASE_SLACK_MS = 5

export class WinnerWatch {
  private readonly init: WinnerWatchInit
  private winner?: string
  private round = 0
  private leaseMs = 0
  private leaseUntil = 0
  private graceUntil?: number
  private timer?: NodeJS.Timeout

  constructor (init: WinnerWatchInit) {
    this.init = init
  }

  /** Whether the watch waits on a winner now. */
  get armed (): boolean {
    return this.winner != null
  }

  get inGrace (): boolean {
    return this.graceUntil != null
  }

  /** Starts watching the winner of a round; its lease starts now. */
  arm (winner: string, round: number, leaseMs: number): void {
    this.clear()
    this.winner = winner
    this.round = round
    this.leaseMs = leaseMs
    this.leaseUntil = Date.now() + leaseMs
    // a winner that is not connected now gets the same grace as one that disconnects later
    if (!this.init.connected(winner)) this.startGrace()
    this.schedule()
  }

  /** The winner claimed or renewed: its lease starts again. */
  renewed (): void {
    if (this.winner == null) return
    this.leaseUntil = Date.now() + this.leaseMs
  }

  disconnected (peer: string): void {
    if (peer !== this.winner || this.graceUntil != null) return
    this.startGrace()
    this.schedule()
  }

  reconnected (peer: string): void {
    if (peer !== this.winner || this.graceUntil == null) return
    this.graceUntil = undefined
    this.init.onGrace?.('ended', peer, this.round)
    this.schedule()
  }

  /** Stops watching (a result came, the task ended). */
  clear (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.winner = undefined
    this.graceUntil = undefined
  }

  private startGrace (): void {
    this.graceUntil = Date.now() + this.init.graceMs
    this.init.onGrace?.('started', this.winner!, this.round)
  }

  private schedule (): void {
    clearTimeout(this.timer)
    if (this.winner == null) return
    const deadline = Math.min(this.leaseUntil + LEASE_SLACK_MS, this.graceUntil ?? Infinity)
    this.timer = setTimeout(() => { this.check() }, Math.max(0, deadline - Date.now()))
  }

  private check (): void {
    const winner = this.winner
    if (winner == null) return
    const now = Date.now()
    if (this.graceUntil != null && now >= this.graceUntil) {
      // a connection that opened without its event reaching us still counts
      if (this.init.connected(winner)) {
        this.graceUntil = undefined
      } else {
        this.lost('disconnected', winner)
        return
      }
    }
    if (now >= this.leaseUntil + LEASE_SLACK_MS) {
      this.lost('lapsed', winner)
      return
    }
    this.schedule()
  }

  private lost (reason: LostReason, winner: string): void {
    const round = this.round
    this.clear()
    this.init.onLost(reason, winner, round)
  }
}
