// RFC 4648 base32 without padding, lowercase. Used for hive ids and invite payloads: case-free,
// no look-alike digits (0/1/8/9 are absent), and upper-cased it fits a QR code's compact
// alphanumeric mode.

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const LOOKUP = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]))

export function base32Encode (bytes: Uint8Array): string {
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31]
  return out
}

/** Decodes base32 in either case; undefined on any character outside the alphabet or bad tail. */
export function base32Decode (text: string): Uint8Array | undefined {
  const out = new Uint8Array(Math.floor(text.length * 5 / 8))
  let buffer = 0
  let bits = 0
  let at = 0
  for (const char of text.toLowerCase()) {
    const value = LOOKUP.get(char)
    if (value == null) return undefined
    buffer = (buffer << 5) | value
    bits += 5
    if (bits >= 8) {
      out[at++] = (buffer >>> (bits - 8)) & 0xff
      bits -= 8
    }
    buffer &= (1 << bits) - 1
  }
  // leftover bits must be zero padding shorter than one character, or the text was altered
  if (bits >= 5 || buffer !== 0) return undefined
  return out
}
