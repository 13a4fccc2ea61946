// LLM API routes, behind `hive-node ask`, `models`, `cloud` and `budget`:
//   POST   /llm/chat     { prompt | messages, models?, maxTokens?, temperature?, seed?, cloud? }
//                       runs one chat through the waterfall and answers an NDJSON stream
//                       (application/x-ndjson), one object per line: { route } when a route is
//                       tried, { token } per token, then { done: ChatResult } or { error: { code,
//                       message } }. Closing the connection cancels the call.
//   GET    /llm/models   { models: [{ name, devices: [device names] }] }: every model in the hive.
//   POST   /llm/models   { path, name? }: copies a GGUF file into this device's models folder
//                       (its header checked first; an existing model is never replaced).
//   GET    /budget       { status, setting }: the hive's caps and this device's slice and spend.
//   POST   /budget       { dayUsd?, agents?: { DIGEST: USD } } signs and replicates new caps.
//   GET    /cloud        { providers: [{ provider, baseUrl? }] } (never a key).
//   POST   /cloud        { provider, key, baseUrl? } stores a key on this device only.
//   DELETE /cloud/:provider

import { z } from 'zod'
import { MAX_CONTENT_CHARS, MAX_MESSAGES, MAX_MODEL_NAME, MAX_MODELS, MAX_TOKENS, addModelFile } from '../../protocol/llm/index.ts'
import { modelsDir } from '../llm.ts'
import { parseInput } from './input.ts'
import { ApiError } from '../errors.ts'
import type { ChatRequest } from '../../protocol/llm/index.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

const ModelName = z.string().min(1).max(MAX_MODEL_NAME)
const USD = z.number().min(0).max(1e6)

const chatBody = z.strictObject({
  prompt: z.string().min(1).max(MAX_CONTENT_CHARS).optional(),
  messages: z.array(z.strictObject({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(MAX_CONTENT_CHARS) })).min(1).max(MAX_MESSAGES).optional(),
  models: z.array(ModelName).max(MAX_MODELS).optional(),
  maxTokens: z.int().min(1).max(MAX_TOKENS).optional(),
  temperature: z.number().min(0).max(2).optional(),
  seed: z.int().min(0).max(2 ** 32 - 1).optional(),
  cloud: z.boolean().optional()
}).refine(b => (b.prompt == null) !== (b.messages == null), 'give a prompt or messages')

const budgetBody = z.strictObject({
  dayUsd: USD.optional(),
  agents: z.record(z.string().regex(/^[0-9a-f]{64}$/, 'an agent digest (64 hex characters)'), USD).optional()
})

const cloudBody = z.strictObject({
  provider: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'a provider name such as openai'),
  key: z.string().min(1).max(4096),
  baseUrl: z.url().max(512).optional()
})

const STATUS_BY_CODE: Record<string, number> = {
  ModelExists: 409,
  ModelFileInvalid: 400,
  ModelFileMissing: 400,
  ModelNameInvalid: 400
}

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.post('/llm/chat', async (request, reply) => {
    const body = parseInput(chatBody, request.body)
    const req: ChatRequest = {
      models: body.models ?? [],
      messages: body.messages ?? [{ role: 'user', content: body.prompt ?? '' }],
      maxTokens: body.maxTokens ?? 256,
      ...(body.temperature != null ? { temperature: body.temperature } : {}),
      ...(body.seed != null ? { seed: body.seed } : {})
    }
    const controller = new AbortController()
    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
    raw.on('close', () => { if (!raw.writableFinished) controller.abort(new Error('the client went away')) })
    const line = (value: unknown): void => { if (!raw.destroyed) raw.write(JSON.stringify(value) + '\n') }
    try {
      const result = await node.llm.router.chat(req, {
        cloud: body.cloud === true,
        signal: controller.signal,
        onToken: (token) => { line({ token }) },
        onRoute: (route) => { line({ route }) }
      })
      line({ done: result })
    } catch (err) {
      const e = err as Error
      line({ error: { code: e.name, message: e.message } })
    }
    raw.end()
  })

  app.get('/llm/models', async () => {
    const byModel = new Map<string, Set<string>>()
    for (const entry of node.capabilities.view()) {
      if (!entry.self && !node.hive.membership.isMember(entry.peerId)) continue
      for (const model of entry.caps.models) {
        const devices = byModel.get(model) ?? new Set<string>()
        devices.add(entry.caps.name)
        byModel.set(model, devices)
      }
    }
    for (const model of await node.llm.router.localModels()) {
      const devices = byModel.get(model.name) ?? new Set<string>()
      devices.add(node.name)
      byModel.set(model.name, devices)
    }
    return { models: [...byModel].sort(([a], [b]) => a.localeCompare(b)).map(([name, devices]) => ({ name, devices: [...devices].sort() })) }
  })

  app.post('/llm/models', async (request) => {
    const { path, name } = parseInput(z.strictObject({ path: z.string().min(1).max(4096), name: ModelName.optional() }), request.body)
    try {
      const added = await addModelFile(modelsDir(node.dataDir), path, name != null ? { name } : {})
      return { model: added.name, sizeBytes: added.sizeBytes }
    } catch (err) {
      const e = err as Error
      const status = STATUS_BY_CODE[e.name]
      if (status != null) throw new ApiError(status, e.name, e.message)
      throw err
    }
  })

  app.get('/budget', async () => ({ status: node.llm.budget.status(), setting: node.llm.budgetSetting() ?? null }))

  app.post('/budget', async (request) => {
    const body = parseInput(budgetBody, request.body)
    const micro = (usd: number): number => Math.round(usd * 1e6)
    const status = await node.llm.setBudget({
      ...(body.dayUsd != null ? { dayMicroUsd: micro(body.dayUsd) } : {}),
      ...(body.agents != null ? { agents: Object.fromEntries(Object.entries(body.agents).map(([a, usd]) => [a, micro(usd)])) } : {})
    })
    return { status, setting: node.llm.budgetSetting() ?? null }
  })

  app.get('/cloud', async () => ({ providers: node.llm.cloudList() }))

  app.post('/cloud', async (request) => {
    const body = parseInput(cloudBody, request.body)
    await node.llm.cloudSet({ provider: body.provider, key: body.key, ...(body.baseUrl != null ? { baseUrl: body.baseUrl } : {}) })
    return { providers: node.llm.cloudList() }
  })

  app.delete<{ Params: { provider: string } }>('/cloud/:provider', async (request) => {
    if (!await node.llm.cloudRemove(request.params.provider)) {
      throw new ApiError(404, 'ProviderNotHeld', `this device holds no key for ${request.params.provider.slice(0, 32)}; "hive-node cloud list" shows the held ones`)
    }
    return { providers: node.llm.cloudList() }
  })
}
