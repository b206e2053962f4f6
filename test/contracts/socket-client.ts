/**
 * Node's own WebSocket client (Node 20 needs `--experimental-websocket`) as a child process: `node
 * --experimental-websocket --import tsx socket-client.ts <url> <script JSON>` plays the script (socket-script.ts)
 * and prints its SocketResult as JSON; `{"failed":"..."}` when the socket never opened.
 */
import { playScript, type SocketLike, type SocketScript } from './socket-script.js';

const [url, script] = process.argv.slice(2) as [string, string];
const Socket = (globalThis as { WebSocket?: new (url: string) => SocketLike }).WebSocket;
if (!Socket) throw new Error('no global WebSocket: run node with --experimental-websocket');
const ws = new Socket(url);
let opened = false;
ws.addEventListener('error', () => {
  if (!opened) console.log(JSON.stringify({ failed: `the WebSocket to ${url} did not open` }));
});
ws.addEventListener('open', () => {
  opened = true;
  void playScript(ws, JSON.parse(script) as SocketScript).then((result) => console.log(JSON.stringify(result)));
});
