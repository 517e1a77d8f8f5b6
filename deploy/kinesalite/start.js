// Starts kinesalite on 127.0.0.1 (its CLI ignores the host flag). Usage: node start.js [PORT]
// Streams become ACTIVE at once, so tests and benchmarks need not wait for them.
const kinesalite = require('kinesalite');
const port = Number(process.argv[2] || 4567);
kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 })
  .listen(port, '127.0.0.1', (err) => {
    if (err) throw err;
    console.log('kinesalite on 127.0.0.1:' + port);
  });
