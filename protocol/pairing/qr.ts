// Invites as QR codes: drawn in a terminal, written as PNG, and read back from PNG.
// `qrcode` encodes (terminal and PNG), `pngjs` decodes PNG pixels, `jsqr` finds and reads the code.
// They load on first use: a running node never draws or reads a QR code (the CLI does), so they
// stay out of its start and its memory.

import { readFile, writeFile } from 'node:fs/promises'
import { inviteQrText } from './invite.ts'
import { InvalidInviteError, QrNotFoundError } from './errors.ts'
import type { PNG as PngImage } from 'pngjs'

async function qrcode (): Promise<typeof import('qrcode')> {
  return (await import('qrcode')).default
}

async function png (): Promise<typeof import('pngjs')> {
  return import('pngjs')
}

async function jsqr (): Promise<typeof import('jsqr').default> {
  // jsqr is CommonJS: its module object is the function, which also carries itself as `default`
  return (await import('jsqr')).default.default
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/**
 * The invite as a QR code drawn with Unicode half blocks. With `colour` (a terminal), drawn with
 * the terminal's colour codes, which scan best; without (a file, a pipe, NO_COLOR), plain
 * characters with no escape codes.
 */
export async function inviteQrTerminal (uri: string, options: { colour?: boolean } = {}): Promise<string> {
  const text = inviteQrText(uri)
  if (options.colour === false) return (await qrcode()).toString(text, { type: 'utf8', errorCorrectionLevel: 'M' })
  return (await qrcode()).toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'M' })
}

export async function inviteQrPng (uri: string): Promise<Buffer> {
  return (await qrcode()).toBuffer(inviteQrText(uri), { type: 'png', errorCorrectionLevel: 'M', margin: 4, scale: 8 })
}

/** The invite's QR code as an SVG picture (the dashboard shows it). */
export async function inviteQrSvg (uri: string): Promise<string> {
  return (await qrcode()).toString(inviteQrText(uri), { type: 'svg', errorCorrectionLevel: 'M', margin: 4 })
}

/** Writes the invite's QR code as a PNG readable only by this user (it holds the secret). */
export async function writeInvitePng (path: string, uri: string): Promise<void> {
  await writeFile(path, await inviteQrPng(uri), { mode: 0o600 })
}

export function isPng (bytes: Uint8Array): boolean {
  return bytes.byteLength >= PNG_SIGNATURE.byteLength && Buffer.compare(Buffer.from(bytes.subarray(0, 8)), PNG_SIGNATURE) === 0
}

/** The text of the QR code in a PNG image. */
export async function decodeQrPng (bytes: Uint8Array): Promise<string> {
  if (!isPng(bytes)) throw new InvalidInviteError('the file is not a PNG image; give the PNG that "hive-node pair --png" wrote, or the invite text')
  const [{ PNG }, jsQR] = await Promise.all([png(), jsqr()])
  let image: PngImage
  try {
    image = PNG.sync.read(Buffer.from(bytes))
  } catch (err) {
    throw new InvalidInviteError(`the PNG image cannot be read: ${(err as Error).message}`)
  }
  const pixels = new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.byteLength)
  const code = jsQR(pixels, image.width, image.height, { inversionAttempts: 'attemptBoth' })
  if (code == null) throw new QrNotFoundError('no QR code could be read in the image; use the PNG "hive-node pair --png" wrote, or paste the invite text')
  return code.data
}

export async function readQrPngFile (path: string): Promise<string> {
  return decodeQrPng(await readFile(path))
}
