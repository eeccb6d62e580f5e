// Drives @serverless/event-gateway-sdk 0.11.0 through every call it
// documents, against nimbus (EG_URL: the events API; EG_CONFIG_URL: the
// config API; the key comes from EVENT_GATEWAY_ACCESS_KEY, as the SDK reads
// it for a self-hosted gateway). Each step prints a line "ok NAME" or
// "FAIL NAME: why"; the exit code is the number of failures. The Go test
// (test/e2e/egsdk_test.go) runs it and checks what reached the functions.
'use strict'
const assert = require('assert')
const { step, rejects, done } = require('./steps')
const SDK = require('eg-sdk-0.11')

const space = process.env.EG_SPACE
const eg = new SDK({ url: process.env.EG_URL, configurationUrl: process.env.EG_CONFIG_URL, space })

;(async () => {
  await step('createEventType', async () => {
    assert.deepStrictEqual(await eg.createEventType({ name: 'user.created' }), { space, name: 'user.created' })
    assert.deepStrictEqual(await eg.createEventType({ name: 'http.request' }), { space, name: 'http.request' })
    await eg.createEventType({ name: 'greeting.asked' })
  })
  await step('createEventType twice', () => rejects(eg.createEventType({ name: 'user.created' }),
    'Failed to create user.created event type due the error: Event Type "user.created" already exists.'))
  await step('updateEventType', async () => {
    const t = await eg.updateEventType({ name: 'user.created', metadata: { service: 'users' } })
    assert.deepStrictEqual(t, { space, name: 'user.created', metadata: { service: 'users' } })
  })
  await step('listEventTypes', async () => {
    const all = await eg.listEventTypes()
    assert.deepStrictEqual(all.map(t => t.name), ['user.created', 'http.request', 'greeting.asked'])
    assert.deepStrictEqual((await eg.listEventTypes({ 'metadata.service': 'users' })).map(t => t.name), ['user.created'])
    assert.deepStrictEqual(await eg.listEventTypes({ 'metadata.foo': 'bar' }), [])
  })
  await step('createFunction', async () => {
    const f = await eg.createFunction({ functionId: 'greeter', type: 'nimbus', provider: { function: 'greeter' } })
    assert.deepStrictEqual(f, { space, functionId: 'greeter', type: 'nimbus', provider: { function: 'greeter' } })
    await eg.createFunction({ functionId: 'outside', type: 'http', provider: { url: process.env.HTTP_FUNCTION_URL } })
    await eg.createFunction({ functionId: 'spare', type: 'http', provider: { url: process.env.HTTP_FUNCTION_URL } })
  })
  await step('createFunction twice', () => rejects(eg.createFunction({ functionId: 'greeter', type: 'nimbus', provider: { function: 'greeter' } }),
    'Failed to create the function greeter due the error: Function "greeter" already registered.'))
  await step('updateFunction', async () => {
    const f = await eg.updateFunction({ functionId: 'spare', type: 'http', provider: { url: process.env.HTTP_FUNCTION_URL + '?v=2' } })
    assert.strictEqual(f.provider.url, process.env.HTTP_FUNCTION_URL + '?v=2')
  })
  await step('listFunctions', async () => {
    assert.deepStrictEqual((await eg.listFunctions()).map(f => f.functionId), ['spare', 'outside', 'greeter'])
  })
  await step('deleteFunction', async () => {
    assert.strictEqual(await eg.deleteFunction({ functionId: 'spare' }), undefined)
  })
  await step('createFunction of type awslambda', async () => {
    // The Event Gateway's registration of a Lambda function, keys and all:
    // the secret is never shown back, and stays through an update that
    // sends the masked value.
    const provider = { arn: 'arn:aws:lambda:us-east-1:000000000000:function:greeter', region: 'us-east-1',
      awsAccessKeyId: 'AKIAEXAMPLE', awsSecretAccessKey: 'not-shown' }
    const f = await eg.createFunction({ functionId: 'lambda-greeter', type: 'awslambda', provider })
    assert.deepStrictEqual(f.provider, { ...provider, awsSecretAccessKey: '*****' })
    const u = await eg.updateFunction({ functionId: 'lambda-greeter', type: 'awslambda', provider: f.provider })
    assert.strictEqual(u.provider.awsSecretAccessKey, '*****')
    assert.strictEqual(await eg.deleteFunction({ functionId: 'lambda-greeter' }), undefined)
  })
  await step('createFunction of type awslambda, a bad ARN', () => rejects(
    eg.createFunction({ functionId: 'bad-lambda', type: 'awslambda', provider: { arn: 'arn:aws:s3:::bucket', region: 'us-east-1' } }),
    'Failed to create the function bad-lambda due the error: Function doesn\'t validate. Validation error: provider.arn: "arn:aws:s3:::bucket" is not a Lambda function ARN: use arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]'))
  await step('deleteFunction of a missing one', () => rejects(eg.deleteFunction({ functionId: 'missing-func' }),
    'Failed to delete the function missing-func due the error: Function "missing-func" not found.'))
  let asyncSub
  await step('subscribe', async () => {
    asyncSub = await eg.subscribe({ type: 'async', eventType: 'user.created', functionId: 'greeter', path: '/users' })
    assert.deepStrictEqual(asyncSub, {
      space, subscriptionId: 'YXN5bmMsdXNlci5jcmVhdGVkLGdyZWV0ZXIsJTJGdXNlcnMsUE9TVA', type: 'async', eventType: 'user.created',
      functionId: 'greeter', path: '/users', method: 'POST'
    })
    await eg.subscribe({ type: 'async', eventType: 'user.created', functionId: 'outside', path: '/users' })
    await eg.subscribe({ type: 'sync', eventType: 'greeting.asked', functionId: 'greeter', path: '/greet' })
    await eg.subscribe({ type: 'sync', eventType: 'http.request', functionId: 'outside', path: '/hello/:name', method: 'GET' })
  })
  await step('subscribe without a type', () => rejects(eg.subscribe({ functionId: 'greeter', eventType: 'user.created' }),
    'Failed to subscribe the event user.created to the function greeter due the error: Subscription doesn\'t validate. Validation error: type must be "sync" or "async"'))
  await step('listSubscriptions', async () => {
    const subs = await eg.listSubscriptions()
    assert.strictEqual(subs.length, 4)
    assert.deepStrictEqual(await eg.listSubscriptions({ 'metadata.foo': 'bar' }), [])
  })
  await step('createCORS', async () => {
    const c = await eg.createCORS({ method: 'GET', path: '/hello/:name', allowedOrigins: ['http://example.com'] })
    assert.deepStrictEqual(c, {
      space, corsId: 'GET%2Fhello%2F:name', method: 'GET', path: '/hello/:name', allowedOrigins: ['http://example.com'],
      allowedMethods: ['HEAD', 'GET', 'POST'], allowedHeaders: ['Origin', 'Accept', 'Content-Type'], allowCredentials: false
    })
  })
  await step('createCORS twice', () => rejects(eg.createCORS({ method: 'GET', path: '/hello/:name' }),
    'Failed to create CORS configuration due the error: CORS configuration "GET%2Fhello%2F:name" already exists.'))
  await step('updateCORS', async () => {
    const c = await eg.updateCORS({ corsId: 'GET%2Fhello%2F:name', method: 'GET', path: '/hello/:name', allowedOrigins: ['*'] })
    assert.deepStrictEqual(c.allowedOrigins, ['*'])
  })
  await step('listCORS', async () => {
    assert.deepStrictEqual((await eg.listCORS()).map(c => c.corsId), ['GET%2Fhello%2F:name'])
  })
  await step('emit, async subscribers', async () => {
    const r = await eg.emit({ eventType: 'user.created', cloudEventsVersion: '0.1', source: '/services/users', eventID: 'sdk11-1',
      eventTime: '2026-11-26T10:00:00Z', contentType: 'application/json', data: { name: 'ann' } }, { path: '/users' })
    assert.strictEqual(r.status, 202)
  })
  await step('emit, a sync subscriber', async () => {
    const r = await eg.emit({ eventType: 'greeting.asked', cloudEventsVersion: '0.1', source: '/asker', eventID: 'sdk11-2',
      contentType: 'application/json', data: { who: 'bob' } }, { path: '/greet' })
    assert.strictEqual(r.status, 200)
    assert.strictEqual(r.headers.get('x-event-type'), 'greeting.asked')
    assert.deepStrictEqual(JSON.parse(await r.text()), { who: 'bob' })
  })
  await step('emit, an error', () => rejects(eg.emit({ eventType: 'user.created', cloudEventsVersion: '0.1', eventID: 'x' }, { path: '/users' }),
    'Failed to emit the event user.created due the error: CloudEvent doesn\'t validate: source required'))
  await step('unsubscribe', async () => {
    assert.strictEqual(await eg.unsubscribe({ subscriptionId: asyncSub.subscriptionId }), undefined)
  })
  await step('unsubscribe of a missing one', () => rejects(eg.unsubscribe({ subscriptionId: 'xxx' }),
    'Failed to unsubscribe the subscription xxx due the error: Subscription "xxx" not found.'))
  await step('deleteCORS', async () => {
    assert.strictEqual(await eg.deleteCORS({ corsId: 'GET%2Fhello%2F:name' }), undefined)
  })
  await step('deleteCORS of a missing one', () => rejects(eg.deleteCORS({ corsId: 'GET%2Fhello%2F:name' }),
    'Failed to delete GET%2Fhello%2F:name CORS configuration due the error: CORS configuration "GET%2Fhello%2F:name" not found.'))
  await step('deleteEventType in use', () => rejects(eg.deleteEventType({ name: 'greeting.asked' }),
    'Failed to delete greeting.asked event type due the error: Event type cannot be deleted because there are subscriptions using it.'))
  await step('deleteEventType of a missing one', () => rejects(eg.deleteEventType({ name: 'non.existing' }),
    'Failed to delete non.existing event type due the error: Event Type "non.existing" not found.'))
  done()
})()
