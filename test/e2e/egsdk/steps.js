// What both SDK scripts share: step runs one named check and prints
// "ok NAME" or "FAIL NAME: why"; rejects checks that a call fails with
// exactly message; done sets the exit code to the number of failures.
'use strict'
const assert = require('assert')

let failures = 0

async function step (name, fn) {
  try {
    await fn()
    console.log('ok ' + name)
  } catch (e) {
    failures++
    console.log('FAIL ' + name + ': ' + (e && e.stack ? e.stack : e))
  }
}

async function rejects (p, message) {
  try {
    await p
  } catch (e) {
    assert.strictEqual(e.message, message)
    return
  }
  throw new Error('resolved, want a rejection: ' + message)
}

function done () { process.exitCode = failures }

module.exports = { step, rejects, done }
