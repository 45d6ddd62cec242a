// The floor, part 1: bare node:http doing the same JSON in and out as iris' protocol route
// (read the body, JSON.parse it, answer iris' answer as a fixed JSON). `node bench/floor/node-http.mjs PORT`.
import { createServer } from 'node:http';

const answer = JSON.stringify({ model_name: 'iris', model_version: '1', outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 3], data: [0.98158467, 0.018415343, 1.4496837e-8] }, { name: 'label', datatype: 'INT64', shape: [1], data: [0] }] });
createServer((req, res) => {
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    // GET is the readiness check; a POST's body is parsed as a route would.
    const out = req.method === 'GET' ? '{"ready":true}' : (JSON.parse(Buffer.concat(chunks).toString('utf8')), answer);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(out) });
    res.end(out);
  });
}).listen(Number(process.argv[2]), '127.0.0.1');
