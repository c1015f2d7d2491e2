// kubectl db's errors from the Kubernetes client: the WebSocket port-forward rejects with an ErrorEvent
// (no Error, no ApiException), which once printed as "[object Object]".
import { describe, expect, it } from 'vitest';
import { kubeError } from '../../../src/cli/db/kube.js';
import { DrawbridgeError } from '../../../src/errors.js';

describe('kubeError', () => {
  it('turns a refused WebSocket upgrade into a KUBE_ERROR naming what was done and the fix', () => {
    const event = { type: 'error', message: 'Unexpected server response: 403' };
    const err = kubeError(event, 'port-forward to shop/drawbridge-orders-0');
    expect(err).toBeInstanceOf(DrawbridgeError);
    expect((err as DrawbridgeError).code).toBe('KUBE_ERROR');
    expect(err.message).toBe('port-forward to shop/drawbridge-orders-0: Unexpected server response: 403');
    expect((err as DrawbridgeError).hint).toMatch(/drawbridge-user ClusterRole/);
  });

  it('keeps other WebSocket failures without a hint, and Errors as they are', () => {
    const err = kubeError({ message: 'Unexpected server response: 502' }, 'port-forward');
    expect(err.message).toBe('port-forward: Unexpected server response: 502');
    expect((err as DrawbridgeError).hint).toBeUndefined();
    const plain = new Error('socket hang up');
    expect(kubeError(plain, 'port-forward')).toBe(plain);
  });
});
