// The rules of serve --auth: which rule decides for a service/endpoint, and what it says of a caller.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkRule, decide, readRules, ruleFor, rulesPath, writeRules, type Rule } from '../../../serve/auth/rules.js';

// ---
const pick = suite('ruleFor');

const rules: Rule[] = [
  { resource: '*', access: 'scopes', scopes: ['staff'] },
  { resource: 'billing', access: 'scopes', scopes: ['finance'] },
  { resource: 'billing/Invoice.*', access: 'account' },
  { resource: 'billing/Invoice.Get', access: 'public' },
];

pick('the most specific of 4 matching rules decides: exact endpoint, Service.*, service, *', () => {
  assert.is(ruleFor(rules, 'billing', 'Invoice.Get').access, 'public');
  assert.is(ruleFor(rules, 'billing', 'Invoice.Pay').access, 'account');
  assert.equal(ruleFor(rules, 'billing', 'Refund.Make').scopes, ['finance']);
  assert.equal(ruleFor(rules, 'helloworld', 'Greeter.Hello').scopes, ['staff']);
});

pick('with no rule, any authenticated caller (the default); Service.* does not match a longer handler name', () => {
  assert.equal(ruleFor([], 'x', 'A.B'), { resource: '*', access: 'account' });
  assert.is(ruleFor([{ resource: 'x/A.*', access: 'public' }], 'x', 'AB.C').access, 'account');
});

pick.run();

// ---
const judge = suite('decide');

judge('public: anyone; account: any token; scopes: one of them (401 without a token, 403 without the scope)', () => {
  const user = { name: 'ada', scopes: ['user'] };
  assert.is(decide({ resource: '*', access: 'public' }, undefined), 'granted');
  assert.is(decide({ resource: '*', access: 'account' }, undefined), 'unauthorized');
  assert.is(decide({ resource: '*', access: 'account' }, user), 'granted');
  const admins: Rule = { resource: '*', access: 'scopes', scopes: ['admin', 'ops'] };
  assert.is(decide(admins, undefined), 'unauthorized');
  assert.is(decide(admins, user), 'forbidden');
  assert.is(decide(admins, { name: 'bo', scopes: ['ops'] }), 'granted');
});

judge.run();

// ---
const check = suite('checkRule');

check('refuses a resource that is not SERVICE[/Service.Method|Service.*|*] and a scopes rule without scopes', () => {
  for (const resource of ['a/b', 'a/B.c.d', 'a/*.x', '', 'a b'])
    assert.throws(() => checkRule({ resource, access: 'public' }), /not a resource/, resource);
  assert.throws(() => checkRule({ resource: 'a', access: 'scopes', scopes: [] }), /one or more scopes/);
  assert.equal(checkRule({ resource: 'a/B.*', access: 'account' }), { resource: 'a/B.*', access: 'account' });
});

check.run();

// ---
const file = suite('writeRules');

file('writes the rules file 0600 in a 0700 folder, and readRules reads it back', () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-rules-'));
  try {
    assert.equal(readRules(home), []);
    writeRules(home, rules);
    assert.equal(readRules(home), rules);
    assert.is(statSync(rulesPath(home)).mode & 0o777, 0o600);
    assert.is(statSync(join(home, 'auth')).mode & 0o777, 0o700);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

file.run();
