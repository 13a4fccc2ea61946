// One cache of the code tasks' interpreter for every test process: keyed on its inputs (see
// sandbox/code-runtime.ts), so a run builds it at most once and later runs not at all.

import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const TEST_RUNTIMES_DIR = join(tmpdir(), 'hive-node-test-runtimes')
