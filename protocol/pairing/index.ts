// Pairing by QR code: one-time invites (a URI and its QR code, in the terminal or as PNG) and
// the protocol by which a new device proves it holds one and joins the hive. May use libp2p
// interfaces, the wire helpers in ../wire.ts and ../membership; never imports node/.

export * from './errors.ts'
export { INVITE_SCHEME, Invite, MAX_INVITE_RELAYED_ADDRESSES, decodeInvite, encodeInvite, inviteAddressForm, inviteAddresses, inviteQrText } from './invite.ts'
export { RELAY_WINDOW_PROTOCOL, requestRelayWindow, serveRelayWindows } from './relay-window.ts'
export type { InviteFields } from './invite.ts'
export { decodeQrPng, inviteQrPng, inviteQrSvg, inviteQrTerminal, isPng, readQrPngFile, writeInvitePng } from './qr.ts'
export {
  DEFAULT_INVITE_TTL_MS, MAX_FAILED_ATTEMPTS, MAX_INVITE_TTL_MS, MAX_PAIRING_MESSAGE_BYTES, PAIRING_PROTOCOL, Pairing, createPairing, pairingMac
} from './pairing.ts'
export type {
  CreatedInvite, InviteState, InviteStatus, JoinResult, PairedEvent, PairingComponents, PairingInit, PairingLog, PairingNetwork, RefusedEvent
} from './pairing.ts'
