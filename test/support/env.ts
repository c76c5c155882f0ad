// Tests that compare a kernel with tfjs turn the kernel off for a while through its environment variable.

/** Runs `body` with the environment variable `name` set to `value` (unset for undefined), restoring it after. */
export async function withEnv<T>(name: string, value: string | undefined, body: () => Promise<T>): Promise<T> {
  const before = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}
