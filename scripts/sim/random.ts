/**
 * Seeded randomness for the scale model: a small PRNG (mulberry32) so that a run is
 * reproducible from its seed, and the lognormal latency distribution fitted to a p50 and a p99.
 *
 * @module
 */

/** A seeded source of numbers in [0, 1) (mulberry32: fast, 32-bit state, fine for simulation). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Hex digits from `random`, for ids, nonces and lease tokens (`QueueOptions.randomHex`). */
export function seededHex(random: () => number): (length: number) => string {
  return (length) => {
    let s = "";
    while (s.length < length)
      s += Math.floor(random() * 0x100000000)
        .toString(16)
        .padStart(8, "0");
    return s.slice(0, length);
  };
}

/** z of the 99th percentile of the standard normal distribution. */
const Z99 = 2.3263478740408408;

/** A latency distribution given by its median and 99th percentile, in ms. */
export interface Percentiles {
  p50: number;
  p99: number;
}

/**
 * A lognormal sampler with the given median and 99th percentile (ms): `exp(mu + sigma·z)` with
 * `mu = ln p50` and `sigma = (ln p99 − ln p50) / z99`. Lognormal because request latencies are
 * a product of many small delays: a steep body and a long right tail, as S3's are.
 */
export function lognormal(p: Percentiles, random: () => number): () => number {
  const mu = Math.log(p.p50);
  const sigma = (Math.log(p.p99) - mu) / Z99;
  return () => Math.exp(mu + sigma * standardNormal(random));
}

/** One standard normal draw (Box–Muller). */
function standardNormal(random: () => number): number {
  const u = 1 - random(); // (0, 1]: log(0) is -Infinity
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
