// edge-proxy: one process (or, with edge.workers > 1, a primary supervising N workers), started
// from the config file named by --config.
import './instrument';
import { isEdgePrimary, startEdgeProxy, superviseEdgeWorkers } from '@portcullis/edge';
import { runServiceMain } from '@portcullis/platform';
import type { Stoppable } from '@portcullis/platform';

runServiceMain('edge-proxy', (config, deps): Promise<Stoppable> => (isEdgePrimary(config) ? superviseEdgeWorkers(config, deps.log) : startEdgeProxy(config, deps)));
