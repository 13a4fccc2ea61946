// GET /reach: how this device and each member are reached beyond one LAN (relays, reservations,
// direct or relayed links), with what is wrong and what to do. `hive-node doctor` prints it.

import type { ReachReport } from '../reach.ts'
import type { FastifyInstance } from 'fastify'

export interface ReachNode {
  readonly reach: { report: () => Promise<ReachReport> }
}

export function routes (app: FastifyInstance, node: ReachNode): void {
  app.get('/reach', async () => node.reach.report())
}
