/**
 * Every generated file, by path relative to the project root: a pure function of the resolved
 * functions (no environment, no clock, no file system), so the same source gives the same files
 * on every machine and the drift test means the same for everyone.
 */
import { VERSION } from '../runtime/core/version.ts';
import { cardOf, type DescribedFunction } from '../runtime/pages/describe.ts';
import { gatewayPage } from '../runtime/pages/ui.ts';
import { ACTIVATOR_SERVICE, FILES } from './policy.ts';
import { composeFile } from './render/compose.ts';
import { k8sFiles } from './render/k8s.ts';
import { knativeFiles } from './render/knative.ts';
import { nginxConfig } from './render/nginx.ts';
import { stackFile, swarmGatewayConfig } from './render/swarm.ts';

/**
 * The gateway's page, as nginx serves it: built into the gateway image, not committed (its code
 * is runtime/pages/ui.ts's, which embedded mode serves too).
 *
 * @example writeFileSync('dist/_gateway/index.html', gatewayPageFile(functions));
 */
export function gatewayPageFile(functions: readonly DescribedFunction[]): string {
  return `<!-- Generated from runtime/pages/ui.ts by modelfn build: do not edit. -->\n${gatewayPage(functions.map((fn) => cardOf(fn)), VERSION, { ssi: true })}`;
}

/**
 * The committed generated files' text, by path. The functions are described from their models
 * (runtime/pages/describe.ts, which reads each model's metadata): the list at GET / and the page
 * show what each function really serves.
 *
 * @example for (const [path, text] of Object.entries(generatedFiles(functions))) writeFileSync(path, text);
 */
export function generatedFiles(functions: readonly DescribedFunction[]): Record<string, string> {
  return {
    [FILES.nginx]: nginxConfig(functions, { mode: 'dns', activator: ACTIVATOR_SERVICE }),
    [FILES.compose]: composeFile(functions),
    [FILES.swarmStack]: stackFile(functions),
    [FILES.swarmNginx]: swarmGatewayConfig(functions),
    ...k8sFiles(functions),
    ...knativeFiles(functions),
  };
}
