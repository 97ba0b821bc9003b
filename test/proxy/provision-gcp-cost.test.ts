// The standby's monthly cost estimate from the price table: machine (spot or
// on demand), disk by GB and type, and the external IP.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gcpPricesSchema, gcpStandbySchema } from '../../config/gcp-standby.ts';
import { standbyMonthlyCost } from '../../proxy/provision/gcp-cost.ts';

const cases = [
  // e2-medium on demand: $0.033503/h x 730 h = $24.46; 100 GB pd-balanced $10.00; IP $0.005/h = $3.65
  { name: 'on-demand e2-medium, 100 GB', input: { machineType: 'e2-medium', diskGb: 100, spot: false }, machine: 24.46, disk: 10, ip: 3.65, monthly: 38.11 },
  // spot: $0.010051/h = $7.34; IP at the spot rate $0.0025/h = $1.83
  { name: 'spot e2-medium, 100 GB (the default)', input: { machineType: 'e2-medium', diskGb: 100, spot: true }, machine: 7.34, disk: 10, ip: 1.83, monthly: 19.16 },
  { name: 'spot e2-small, 50 GB pd-standard', input: { machineType: 'e2-small', diskGb: 50, diskType: 'pd-standard', spot: true }, machine: 3.67, disk: 2, ip: 1.83, monthly: 7.49 },
];

for (const c of cases) {
  test(`monthly cost: ${c.name}`, () => {
    const cost = standbyMonthlyCost(c.input);
    assert.ok(cost.known);
    assert.equal(cost.machine, c.machine);
    assert.equal(cost.disk, c.disk);
    assert.equal(cost.externalIp, c.ip);
    assert.equal(cost.monthly, c.monthly);
    assert.ok(Math.abs(cost.perHour * 730 - cost.monthly) < 0.01);
    assert.match(cost.summary, new RegExp(`^\\$${c.monthly.toFixed(2).replace('.', '\\.')}/month \\(${c.input.spot ? 'spot' : 'on-demand'} ${c.input.machineType} `));
  });
}

test('monthly cost: an unknown machine or disk type says what to add to the table', () => {
  assert.deepEqual(standbyMonthlyCost({ machineType: 'n2-standard-2', diskGb: 100, spot: true }), { known: false, reason: 'no price for machine type n2-standard-2: add it to recovery.standby.prices.machineTypes' });
  assert.equal(standbyMonthlyCost({ machineType: 'e2-medium', diskGb: 100, diskType: 'hyperdisk-balanced', spot: true }).known, false);
});

test('monthly cost: a price table from the config replaces the defaults', () => {
  const prices = gcpPricesSchema.parse({ machineTypes: { 'n2-standard-2': { onDemandPerHour: 0.1, spotPerHour: 0.02 } }, disks: { 'pd-balanced': 0.11 } });
  const cost = standbyMonthlyCost({ machineType: 'n2-standard-2', diskGb: 100, spot: true }, prices);
  assert.ok(cost.known);
  assert.equal(cost.machine, 14.6);
  assert.equal(cost.disk, 11);
});

test('gcpStandbySchema: SPEC.md defaults', () => {
  const c = gcpStandbySchema.parse({});
  assert.deepEqual({ zone: c.zone, machineType: c.machineType, diskGb: c.diskGb, spot: c.spot, project: c.project }, { zone: 'europe-west1-b', machineType: 'e2-medium', diskGb: 100, spot: true, project: undefined });
  assert.equal(c.image, 'projects/debian-cloud/global/images/family/debian-12');
  assert.equal(c.prices.machineTypes['e2-medium']?.onDemandPerHour, 0.033503);
  assert.throws(() => gcpStandbySchema.parse({ diskGb: 5 }), /at least 10 GB/);
  assert.throws(() => gcpStandbySchema.parse({ zone: 'Europe West' }), /a GCP zone/);
});
