// The dashboard's routes: its one-time login, and its page and modules, served only to a browser
// that holds a session. The code that serves the page (node/dashboard/serve.ts) loads on the
// first request for the page or the login, so a node nobody looks at holds none of it.
//   POST /dashboard/login   token only: { url, expiresAt }, a single-use login address
//   GET  /login?code=       swaps the code for the session cookie, then 303 to /
//   POST /logout            ends the session
//   GET  /                  the dashboard (session only)
//   GET  /ui/*              its modules, styles and the UI library (session only)

import { ApiError } from '../errors.ts'
import { LOGIN_CODE_TTL_MS } from './session.ts'
import type { Dashboard } from '../dashboard/serve.ts'
import type { Sessions } from './session.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance, FastifyReply } from 'fastify'

export interface DashboardAuth {
  sessions: Sessions
  hasToken: (authorization: string | undefined) => boolean
  /** The API's own address, `http://127.0.0.1:<port>`. */
  url: () => string
}

/** What every dashboard answer carries: nothing on it may come from elsewhere or be framed. */
const BASE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY'
}

const REFUSAL = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hive-node: not logged in</title></head>
<body><h1>Not logged in</h1>
<p>Open the dashboard with <code>hive-node dashboard</code>: it logs this browser in with a one-time code.</p>
</body></html>
`

const CODE_REFUSED = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hive-node: login refused</title></head>
<body><h1>Login refused</h1>
<p>This login address was used already or is older than ${LOGIN_CODE_TTL_MS / 1000} seconds: each works once.
Run <code>hive-node dashboard</code> again for a new one.</p>
</body></html>
`

async function refuse (reply: FastifyReply, html: string): Promise<FastifyReply> {
  return reply.status(401).headers({ ...BASE_HEADERS, 'content-security-policy': "default-src 'none'" }).type('text/html; charset=utf-8').send(html)
}

export function routes (app: FastifyInstance, _node: ApiNode, auth: DashboardAuth): void {
  let loading: Promise<Dashboard> | undefined
  const dashboard = async (): Promise<Dashboard> => {
    loading ??= import('../dashboard/serve.ts').then(async m => await m.loadDashboard())
    return await loading
  }

  app.post('/dashboard/login', async (request, reply) => {
    // the page itself may not mint logins: only a holder of the token (the CLI)
    if (!auth.hasToken(request.headers.authorization)) {
      throw new ApiError(401, 'Unauthorized', 'a login code needs the node\'s token (Authorization: Bearer <token from api.token in the data directory>)')
    }
    const { code, expiresAt } = auth.sessions.issueCode()
    return reply.status(201).send({ url: `${auth.url()}/login?code=${code}`, expiresAt })
  })

  app.get<{ Querystring: { code?: string } }>('/login', async (request, reply) => {
    await dashboard()
    const code = typeof request.query.code === 'string' ? request.query.code : ''
    const session = auth.sessions.redeem(code)
    if (session === undefined) return await refuse(reply, CODE_REFUSED)
    return reply.status(303).headers({ ...BASE_HEADERS, 'set-cookie': auth.sessions.setCookie(session), location: '/' }).send()
  })

  app.post('/logout', async (request, reply) => {
    auth.sessions.end(request.headers.cookie)
    return reply.headers({ 'set-cookie': auth.sessions.clearCookie() }).send({ loggedOut: true })
  })

  app.get('/', async (request, reply) => {
    const page = await dashboard()
    if (!auth.sessions.check(request.headers.cookie)) return await refuse(reply, REFUSAL)
    return reply.headers({ ...BASE_HEADERS, 'content-security-policy': page.csp }).type('text/html; charset=utf-8').send(page.html)
  })

  app.get<{ Params: { '*': string } }>('/ui/*', async (request, reply) => {
    const page = await dashboard()
    if (!auth.sessions.check(request.headers.cookie)) {
      throw new ApiError(401, 'LoginRequired', 'the dashboard needs a login: run "hive-node dashboard"')
    }
    const file = page.file(request.params['*'])
    if (file === undefined) throw new ApiError(404, 'NotFound', `the dashboard has no file ${request.params['*']}`)
    return reply.headers({ ...BASE_HEADERS, 'content-security-policy': page.csp }).type(file.type).send(file.body)
  })
}
