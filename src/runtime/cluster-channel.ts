// The words a cluster's primary and its workers exchange over node:cluster's channel (and the environment a worker is
// forked with): one list, so both sides (runtime/cluster.ts in a worker, runtime/cluster-primary.ts) say the same.
export const ACME_SCHEDULER_ENV = 'GATEHOUSE_ACME_SCHEDULER';
/** Set for the workers of a primary that serves [metrics]: they load prom-client and answer its collection. */
export const METRICS_ENV = 'GATEHOUSE_CLUSTER_METRICS';
export const STOP_MESSAGE = 'gatehouse:stop';
/** The primary's order to reload the configuration in place (SIGHUP with an unchanged worker count). */
export const RELOAD_MESSAGE = 'gatehouse:reload';
/** A worker's answer to RELOAD_MESSAGE, with how its reload ended. */
export const RELOAD_DONE = 'gatehouse:reload-done';
export const LISTENING_MESSAGE = 'gatehouse:listening';
export const READINESS_QUERY = 'gatehouse:readiness?';
export const READINESS_ANSWER = 'gatehouse:readiness';
/** A worker whose listeners are closed asks, and the primary answers: see leaveCluster(). */
export const LEAVING_QUERY = 'gatehouse:leaving?';
export const LEAVING_ANSWER = 'gatehouse:leaving';
/** A session ended in one worker: the primary passes it on to the others, which close its WebSockets. */
export const SESSION_ENDED = 'gatehouse:session-ended';
