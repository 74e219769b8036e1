// Entry point of the virtio-blk worker thread (started by BlkWorker.start in worker.ts).
import { parentPort, workerData } from 'node:worker_threads'
import { runBlkWorker } from './worker.js'

if (!parentPort) throw new Error('worker-main.ts runs as a worker thread (BlkWorker.start), not as a program')
const port = parentPort
runBlkWorker(workerData, (m) => port.postMessage(m))
