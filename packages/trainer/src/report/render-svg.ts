import { MoerlError } from '@moerl/core';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { ChartSpec } from './report-charts.js';

/** Renders a Vega-Lite spec to an SVG string in Node (no browser, no canvas, no network). */
export async function renderSvg(spec: ChartSpec): Promise<string> {
  try {
    const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
    const svg = await view.toSVG();
    view.finalize();
    return svg;
  } catch (error) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `Could not render chart "${String(spec.title)}": ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}
