// Comparing architectures: the same recipe for each, then one table, one page and one JSON file.
export { compareArchitectures, CONFIG_FILE, type CompareResult } from './compare.js';
export type { CompareOptions } from './options.js';
export { inferenceLatency, modelCost, type Latency, type ModelCost } from './measure.js';
export { RESULT_FILE, SAMPLE_FILE, type CompareRow, type ValidationPoint } from './row.js';
export { compareMarkdown, compareTable, type Comparison } from './summary.js';
export { renderCompareHtml, writeCompareHtml, COMPARE_ASSET_DIR, type CompareSample, type CompareSampleFiles } from './page.js';
