/**
 * The roles' metrics endpoint as the CLI starts and stops it: --metrics-host
 * and TAMP_METRICS_HOST, and the TAMP_TEST_HOLD_METRICS_MS test hook (the
 * endpoint stays up after the role's work until a scrape begun after that
 * is answered). Real HTTP servers on loopback.
 */
import { describe, expect, it } from 'vitest';
import { UsageError } from '@tamp/core';
import { metricsHoldFromEnv, startMetrics, stopMetrics } from './shared-options.js';

const silent = () => {};

describe('role metrics endpoint', () => {
  it('reads the hold hook, refusing anything but milliseconds', () => {
    expect(metricsHoldFromEnv({})).toBe(0);
    expect(metricsHoldFromEnv({ TAMP_TEST_HOLD_METRICS_MS: '' })).toBe(0);
    expect(metricsHoldFromEnv({ TAMP_TEST_HOLD_METRICS_MS: '2500' })).toBe(2500);
    expect(() => metricsHoldFromEnv({ TAMP_TEST_HOLD_METRICS_MS: 'soon' })).toThrow(UsageError);
    expect(() => metricsHoldFromEnv({ TAMP_TEST_HOLD_METRICS_MS: '-1' })).toThrow(/unset it outside tests/);
  });

  it('starts nothing without a port, refuses a bad hold before listening, and listens on --metrics-host over TAMP_METRICS_HOST', async () => {
    expect(await startMetrics({}, '127.0.0.1', silent, {})).toBeUndefined();
    await expect(startMetrics({ 'metrics-port': 0 }, '127.0.0.1', silent, { TAMP_TEST_HOLD_METRICS_MS: 'x' })).rejects.toThrow(UsageError);
    // An address this machine does not have: listening on it fails, so the host in use is the one named.
    await expect(startMetrics({ 'metrics-port': 0 }, '127.0.0.1', silent, { TAMP_METRICS_HOST: '192.0.2.1' })).rejects.toThrow(/192\.0\.2\.1/);
    const server = await startMetrics({ 'metrics-port': 0, 'metrics-host': '127.0.0.1' }, '192.0.2.1', silent, { TAMP_METRICS_HOST: '192.0.2.1' });
    expect(server).toBeDefined();
    expect((await fetch(`http://127.0.0.1:${server?.port}/healthz`)).status).toBe(200);
    await stopMetrics(server, {});
    await expect(fetch(`http://127.0.0.1:${server?.port}/healthz`)).rejects.toThrow();
  });

  it('with the hold hook, stays up after the work until one more scrape, then closes', async () => {
    const server = await startMetrics({ 'metrics-port': 0 }, '127.0.0.1', silent, {});
    const url = `http://127.0.0.1:${server?.port}/metrics`;
    await fetch(url); // a scrape before the work ended does not count
    let stopped = false;
    const stopping = stopMetrics(server, { TAMP_TEST_HOLD_METRICS_MS: '60000' }).then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(stopped).toBe(false);
    expect((await fetch(url)).status).toBe(200);
    await stopping;
    expect(server?.scrapes).toBe(2);
    await expect(fetch(url)).rejects.toThrow();
  });
});
