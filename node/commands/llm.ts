// LLM commands: ask, models (and models add), cloud set|remove|list, budget.

import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { z } from 'zod'
import { ApiRequestError, UsageError, table } from '../cli-context.ts'
import type { BudgetBody, BudgetStatus, ChatResult, LlmRoute } from '../../protocol/llm/index.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

const StreamLine = z.union([
  z.object({ route: z.object({ kind: z.enum(['local', 'peer', 'cloud']), device: z.string().optional(), provider: z.string().optional() }).loose() }),
  z.object({ token: z.string() }),
  z.object({ done: z.object({ text: z.string(), model: z.string() }).loose() }),
  z.object({ error: z.object({ code: z.string(), message: z.string() }) })
])

export function routeText (route: Pick<LlmRoute, 'kind'> & { device?: string, provider?: string }): string {
  return route.kind === 'local' ? 'local' : route.kind === 'peer' ? `peer ${route.device ?? '?'}` : `cloud ${route.provider ?? '?'}`
}

function usdText (micro: number): string {
  return `$${(micro / 1e6).toFixed(micro > 0 && micro < 10_000 ? 6 : 2)}`
}

function parseUsd (value: string, flag: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1e6) throw new UsageError(`${flag} takes an amount of US dollars from 0 to 1000000, not "${value}"`)
  return n
}

interface AskOptions extends CommonOptions {
  model?: string[]
  cloud?: boolean
  maxTokens?: string
  temperature?: string
  seed?: string
}

export function register (program: Command, cli: CliContext): void {
  program.command('ask')
    .description('run one chat through the hive\'s waterfall (this device, a member, a cloud with --cloud) and stream the answer')
    .argument('<prompt>', 'what to ask')
    .option('--model <name>', 'an acceptable model, repeatable, most preferred first (default: any model the hive holds)', collect)
    .option('--cloud', 'the call may go to a cloud provider whose key this device holds, within the budget')
    .option('--max-tokens <n>', 'most tokens to generate (default 256)')
    .option('--temperature <t>', 'sampling temperature, 0 to 2')
    .option('--seed <n>', 'sampling seed')
    .option('--json', 'print the result as JSON (no streaming)')
    .action(async (prompt: string, options: AskOptions, command: Command) => {
      const all = command.optsWithGlobals<AskOptions>()
      const int = (v: string | undefined, flag: string): number | undefined => {
        if (v == null) return undefined
        if (!/^\d+$/.test(v)) throw new UsageError(`${flag} takes a whole number, not "${v}"`)
        return Number(v)
      }
      const temperature = options.temperature != null ? Number(options.temperature) : undefined
      if (temperature != null && !(temperature >= 0 && temperature <= 2)) throw new UsageError(`--temperature takes a number from 0 to 2, not "${options.temperature ?? ''}"`)
      const body = {
        prompt,
        ...(options.model != null ? { models: options.model } : {}),
        ...(options.cloud === true ? { cloud: true } : {}),
        ...(options.maxTokens != null ? { maxTokens: int(options.maxTokens, '--max-tokens') } : {}),
        ...(temperature != null ? { temperature } : {}),
        ...(options.seed != null ? { seed: int(options.seed, '--seed') } : {})
      }
      const routes: unknown[] = []
      let started = false
      for await (const raw of cli.api(all).postLines('/llm/chat', body)) {
        const parsed = StreamLine.safeParse(raw)
        if (!parsed.success) continue
        const line = parsed.data
        if ('route' in line) {
          routes.push(line.route)
          if (all.json !== true) {
            if (started) cli.out('\n')
            cli.err(`[${routeText(line.route)}]\n`)
            started = false
          }
        } else if ('token' in line) {
          if (all.json !== true) cli.out(line.token)
          started = true
        } else if ('done' in line) {
          const result = line.done as unknown as ChatResult
          if (all.json === true) {
            cli.out(JSON.stringify({ ...result, tried: routes }, null, 2) + '\n')
          } else {
            if (!started) cli.out(result.text)
            cli.out('\n')
            cli.err(`[${result.model} on ${routeText(result.route)}: ${result.tokensIn} tokens in, ${result.tokensOut} out${result.costMicroUsd > 0 ? `, ${usdText(result.costMicroUsd)}` : ''}]\n`)
          }
          return
        } else {
          throw new ApiRequestError(200, line.error.code, line.error.message)
        }
      }
      throw new ApiRequestError(200, 'StreamEnded', 'the node ended the answer before it was done')
    })

  const models = program.command('models')
    .description('list every model in the hive and the devices that hold it')
    .option('--json', 'print JSON')
    .action(async (options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { models: list } = await cli.api(all).get<{ models: Array<{ name: string, devices: string[] }> }>('/llm/models')
      cli.print(all, () => list.length === 0
        ? 'no device in the hive holds a model; add a GGUF file with "hive-node models add FILE.gguf" or pull one into Ollama'
        : table(['MODEL', 'DEVICES'], list.map(m => [m.name, m.devices.join(', ')])), { models: list })
    })
  models.command('add')
    .description('copy a GGUF model file into this device\'s models folder, for the embedded engine')
    .argument('<file>', 'a .gguf file')
    .option('--name <name>', 'the model\'s name in the hive (default: the file\'s name without .gguf)')
    .option('--json', 'print JSON')
    .action(async (file: string, options: CommonOptions & { name?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const added = await cli.api(all).post<{ model: string, sizeBytes: number }>('/llm/models', { path: resolve(file), ...(options.name != null ? { name: options.name } : {}) })
      cli.print(all, `added ${added.model} (${added.sizeBytes} bytes)`, added)
    })

  const cloud = program.command('cloud').description('cloud provider keys held on this device (never shared with the hive)')
  cloud.command('set')
    .description('store a provider\'s API key on this device (mode 0600 in the data directory)')
    .argument('<provider>', 'a name such as openai')
    .requiredOption('--key-file <file>', 'a file holding the API key (the key is never given on the command line)')
    .option('--base-url <url>', 'the provider\'s OpenAI-compatible API base URL')
    .action(async (provider: string, options: CommonOptions & { keyFile: string, baseUrl?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      let key: string
      try {
        key = (await readFile(options.keyFile, 'utf8')).trim()
      } catch (err) {
        throw new UsageError(`cannot read the key file ${options.keyFile}: ${(err as Error).message}`)
      }
      if (key === '') throw new UsageError(`the key file ${options.keyFile} is empty`)
      await cli.api(all).post('/cloud', { provider, key, ...(options.baseUrl != null ? { baseUrl: options.baseUrl } : {}) })
      cli.out(`stored the ${provider} key on this device\n`)
    })
  cloud.command('remove')
    .description('forget a provider\'s key on this device')
    .argument('<provider>')
    .action(async (provider: string, _options: CommonOptions, command: Command) => {
      await cli.api(command.optsWithGlobals<CommonOptions>()).request('DELETE', `/cloud/${encodeURIComponent(provider)}`)
      cli.out(`removed the ${provider} key\n`)
    })
  cloud.command('list')
    .description('the providers whose keys this device holds')
    .option('--json', 'print JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { providers } = await cli.api(all).get<{ providers: Array<{ provider: string, baseUrl?: string }> }>('/cloud')
      cli.print(all, () => providers.length === 0 ? 'no provider keys on this device' : table(['PROVIDER', 'BASE URL'], providers.map(p => [p.provider, p.baseUrl ?? '(default)'])), { providers })
    })

  program.command('budget')
    .description('show or set the hive\'s cloud spend caps per UTC day (replicated to every member)')
    .option('--day <usd>', 'hive-wide cap per day in US dollars')
    .option('--agent <digest=usd>', 'cap per day for one agent, repeatable (0 removes it)', collect)
    .option('--json', 'print JSON')
    .action(async (options: CommonOptions & { day?: string, agent?: string[] }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      let answer: { status: BudgetStatus, setting: BudgetBody | null }
      if (options.day != null || options.agent != null) {
        const agents: Record<string, number> = {}
        for (const a of options.agent ?? []) {
          const [digest, usd] = a.split('=')
          if (digest == null || usd == null || !/^[0-9a-f]{64}$/.test(digest)) throw new UsageError(`--agent takes DIGEST=USD with the agent's 64-hex digest, not "${a}"`)
          agents[digest] = parseUsd(usd, '--agent')
        }
        answer = await cli.api(all).post('/budget', {
          ...(options.day != null ? { dayUsd: parseUsd(options.day, '--day') } : {}),
          ...(options.agent != null ? { agents } : {})
        })
      } else {
        answer = await cli.api(all).get('/budget')
      }
      const s = answer.status
      cli.print(all, () => [
        `day          ${s.day} (UTC)`,
        `hive cap     ${s.capMicroUsd != null ? usdText(s.capMicroUsd) : 'none: no cloud calls (set one with --day)'}`,
        `this device  slice ${usdText(s.sliceMicroUsd)} (cap / ${s.members} members), spent ${usdText(s.spentMicroUsd)}, reserved ${usdText(s.reservedMicroUsd)}`,
        ...(s.agents.length > 0 ? ['', table(['AGENT', 'CAP', 'SLICE', 'SPENT'], s.agents.map(a => [a.agent.slice(0, 16) + '…', usdText(a.capMicroUsd), usdText(a.sliceMicroUsd), usdText(a.spentMicroUsd)]))] : [])
      ].join('\n'), answer)
    })
}
