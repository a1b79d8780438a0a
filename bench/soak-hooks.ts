/**
 * Module resolution hooks for bench/soak-server.ts (node:module `register`): every import of the
 * server runtime (src/server/runtime.js) resolves to the soak's wrapper (soak-runtime.ts), which
 * re-exports the runtime and hands the soak the RunningServer that `startServer` returns, so the
 * soak reads the store of the very server the CLI's `dkeygen server` started. The wrapper's own
 * import of the runtime is left alone.
 */
import type { InitializeHook, ResolveHook } from "node:module";

interface Redirect {
  /** The runtime module's URL. */
  runtime: string;
  /** The wrapper's URL. */
  wrapper: string;
}

let redirect: Redirect | undefined;

export const initialize: InitializeHook<Redirect> = (data) => {
  redirect = data;
};

export const resolve: ResolveHook = async (specifier, context, next) => {
  const resolved = await next(specifier, context);
  if (redirect && resolved.url === redirect.runtime && context.parentURL !== redirect.wrapper) {
    return { ...resolved, url: redirect.wrapper };
  }
  return resolved;
};
