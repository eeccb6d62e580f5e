// Drives @serverless/event-gateway-sdk 0.3.0 (written for the Event
// Gateway 0.6: the Event header, registerFunction) through its calls
// against nimbus (EG_URL, EG_CONFIG_URL; the key from EVENT_GATEWAY_API_KEY,
// as 0.3.0 reads it). Each step prints "ok NAME" or "FAIL NAME: why"; the
// exit code is the number of failures.
'use strict'
const assert = require('assert')
const { step, rejects, done } = require('./steps')
const SDK = require('eg-sdk-0.3')

const space = process.env.EG_SPACE
const eg = new SDK({ url: process.env.EG_URL, configurationUrl: process.env.EG_CONFIG_URL, space })

;(async () => {
  await step('registerFunction', async () => {
    // 0.6's form: provider.type and a redundant space.
    const f = await eg.registerFunction({ functionId: 'legacy', space, provider: { type: 'nimbus', function: 'greeter' } })
    assert.strictEqual(f.functionId, 'legacy')
    assert.strictEqual(f.type, 'nimbus')
  })
  await step('registerFunction twice', () => rejects(eg.registerFunction({ functionId: 'legacy', provider: { type: 'nimbus', function: 'greeter' } }),
    'Failed to register the function legacy due the error: Function "legacy" already registered.'))
  await step('listFunctions', async () => {
    assert.ok((await eg.listFunctions()).some(f => f.functionId === 'legacy'))
  })
  let sub
  await step('subscribe', async () => {
    // 0.6's form: an "event" field, registering its event type.
    sub = await eg.subscribe({ functionId: 'legacy', event: 'order.placed', path: '/orders' })
    assert.strictEqual(sub.type, 'async')
    assert.strictEqual(sub.eventType, 'order.placed')
  })
  await step('listSubscriptions', async () => {
    assert.ok((await eg.listSubscriptions()).some(s => s.subscriptionId === sub.subscriptionId))
  })
  await step('emit (the Event header)', async () => {
    const r = await fetchEmit()
    assert.strictEqual(r.status, 202)
  })
  await step('emit to a path with no subscriber', async () => {
    const r = await eg.emit({ event: 'nobody.listens', data: { x: 1 } })
    assert.strictEqual(r.status, 202)
  })
  await step('invoke (gone since the Event Gateway 0.8)', async () => {
    try {
      await eg.invoke({ functionId: 'legacy', data: { x: 1 } })
    } catch (e) {
      // As against the Event Gateway 0.9: a legacy event of type invoke, 202.
      assert.strictEqual(e.message, 'Failed to invoke function legacy and couldn\'t parse error body.')
      return
    }
    throw new Error('invoke resolved')
  })
  await step('unsubscribe', async () => {
    assert.strictEqual(await eg.unsubscribe({ subscriptionId: sub.subscriptionId }), undefined)
  })
  await step('deleteFunction', async () => {
    assert.strictEqual(await eg.deleteFunction({ functionId: 'legacy' }), undefined)
  })
  done()

  // 0.3.0's emit posts to the events URL itself, path "/": the order.placed
  // subscription above is on /orders, so emit through a URL with that path.
  async function fetchEmit () {
    const onPath = new SDK({ url: process.env.EG_URL + '/orders', configurationUrl: process.env.EG_CONFIG_URL, space })
    return onPath.emit({ event: 'order.placed', data: { order: 7 } })
  }
})()
