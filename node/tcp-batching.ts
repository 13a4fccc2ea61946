// TCP with its writes batched per tick. Every frame a node sends (a yamux frame, encrypted by
// noise) reaches the socket as at least two writes, the noise length prefix and the ciphertext,
// and a socket that is not corked makes a system call for each. Measured on a burst of placed
// tasks: the socket writes alone were an eighth of the process's CPU. Here a connection's socket
// is corked at its first write of a tick and uncorked once the tick's synchronous work and
// microtasks are over, so everything written in between leaves in one writev. Nothing waits
// longer than that tick; `end()` uncorks, so a graceful close still sends what was written, and
// a reset discards it, as it discards what the kernel had not sent.

import { Socket } from 'node:net'
import { tcp } from '@libp2p/tcp'
import type { TCPOptions } from '@libp2p/tcp'
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'

type SendData = (data: unknown) => { sentBytes: number, canSendMore: boolean }

/** Corks a TCP connection's socket for the rest of the tick at each first write. */
export function corkPerTick (maConn: MultiaddrConnection): void {
  const target = maConn as unknown as { socket?: unknown, sendData?: SendData, tickCorked?: boolean }
  const socket = target.socket
  if (!(socket instanceof Socket) || target.tickCorked === true) return
  const sendData = target.sendData
  if (typeof sendData !== 'function') throw new Error('this TCP build writes to its socket in another way: writes cannot be batched')
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  target.sendData = (data) => {
    if (!corked && !socket.destroyed && socket.writable) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return sendData.call(maConn, data)
  }
  target.tickCorked = true
}

/** The upgrader, with each raw connection's writes batched before it is upgraded. */
function batching (upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get (target, prop) {
      if (prop === 'upgradeInbound' || prop === 'upgradeOutbound') {
        const upgrade = target[prop].bind(target)
        return async (maConn: MultiaddrConnection, options: Parameters<Upgrader['upgradeInbound']>[1]) => {
          corkPerTick(maConn)
          return await upgrade(maConn, options)
        }
      }
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

/** libp2p's TCP transport, each connection's socket writes batched per tick. */
export function batchedTcp (init?: TCPOptions): (components: any) => Transport {
  const make = tcp(init)
  return (components) => {
    const transport = make(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = async (ma, options) => await dial(ma, { ...options, upgrader: batching(options.upgrader) })
    transport.createListener = (options) => createListener({ ...options, upgrader: batching(options.upgrader) })
    return transport
  }
}
