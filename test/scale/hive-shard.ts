// One shard of the scale test's hive: a worker thread holding some of its nodes, running the
// phases the main thread asks for (test/scale/hive-phases.ts `shardPhases`).

import { serveShard } from '../../node/simulate/shards.ts'
import { shardPhases } from './hive-phases.ts'

serveShard(shardPhases)
