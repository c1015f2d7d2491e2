// Byte relay between the local client and the agent. pipe() honours backpressure both ways (a slow
// reader pauses the fast writer) and forwards half-closes; an error or close on either side tears down
// the other, so neither socket outlives its peer.
import type { Socket } from 'node:net';

export function relay(client: Socket, agent: Socket, onClose?: () => void): void {
  client.setNoDelay(true);
  agent.setNoDelay(true);
  client.pipe(agent);
  agent.pipe(client);
  let closed = false;
  const teardown = () => {
    if (closed) return;
    closed = true;
    client.destroy();
    agent.destroy();
    onClose?.();
  };
  client.once('close', teardown);
  agent.once('close', teardown);
  // Errors end in 'close'; listening keeps an ECONNRESET from becoming an uncaught exception.
  client.on('error', teardown);
  agent.on('error', teardown);
}
