/**
 * The baseline of `pnpm bench:serve`: the HTTP server a user would write by
 * hand, stock tfjs on its WASM backend calling `model.predict` once per
 * request on the fp32 model, v2-style JSON in and out. Started as its own
 * process: node --import tsx test/bench/serve-baseline.ts MODEL_JSON PORT
 */
import { createServer } from 'node:http';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fileLoadHandler } from '@tamp/core/node';

const [modelJson = '', port = '8100'] = process.argv.slice(2);
await tf.setBackend('wasm');
const model = await tfl.loadLayersModel(fileLoadHandler(modelJson));
const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    try {
      const body = JSON.parse(Buffer.concat(parts).toString()) as { inputs: Array<{ shape: number[]; data: number[] }> };
      const input = body.inputs[0] as { shape: number[]; data: number[] };
      const y = tf.tidy(() => model.predict(tf.tensor(input.data, input.shape)) as tf.Tensor);
      const out = { outputs: [{ name: 'output', shape: y.shape, datatype: 'FP32', data: Array.from(y.dataSync()) }] };
      y.dispose();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
    } catch (e) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(e) }));
    }
  });
});
server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
