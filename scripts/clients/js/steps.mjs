// The output contract of ../lib.sh for the JavaScript checks: ok / FAIL / xfail lines and a summary.
const missing = new Set((process.env.COFFER_MISSING_OPS || "").split(",").filter(Boolean));
const counts = { passed: 0, failed: 0, xfailed: 0 };

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

// A step that needs an operation listed in COFFER_MISSING_OPS is an expected failure.
export async function step(name, fn, needs) {
  const expectFailure = Boolean(needs && missing.has(needs));
  try {
    await fn();
    if (expectFailure) {
      console.log(`FAIL  ${name} (passed although ${needs} is listed as missing: update COFFER_MISSING_OPS)`);
      counts.failed++;
    } else {
      console.log(`ok    ${name}`);
      counts.passed++;
    }
  } catch (err) {
    if (expectFailure) {
      console.log(`xfail ${name} (${needs} not implemented)`);
      counts.xfailed++;
    } else {
      console.log(`FAIL  ${name}`);
      console.log(`     | ${err.name}: ${err.message}`);
      counts.failed++;
    }
  }
}

export function finish() {
  console.log(`summary passed=${counts.passed} failed=${counts.failed} xfailed=${counts.xfailed}`);
  process.exit(counts.failed ? 1 : 0);
}

// Deterministic test bytes.
export const bytes = (n, seed = 0) => {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) % 251;
  return out;
};

export async function drain(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}
