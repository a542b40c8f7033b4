// The plugin entry: importing `@moerl/example-custom-algorithm/register` registers `example-cispo`, which is what a
// trainer's `plugins: [...]` list does before it looks the objective up by name. The main entry has no
// side effects; this one exists for exactly this one.
import { registerCispo } from './register-cispo.js';

registerCispo();
