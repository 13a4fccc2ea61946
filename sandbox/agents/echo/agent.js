// Echo: returns its input unchanged. The smallest useful agent; it needs no permissions.

export function run (input) {
  return input
}
