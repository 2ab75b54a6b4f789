// Importers from annotation formats to the folder layout, and the rasterizers they share.
export { convertCoco, cocoMask, parseCoco, type CocoAnnotation, type CocoConvertOptions, type CocoImage, type CocoIndex } from './coco.js';
export { convertLabelme, labelmeMask, parseLabelme, readLabelsFile, type LabelmeConvertOptions, type LabelmeFile, type LabelmeShape } from './labelme.js';
export { DEFAULT_LIMITS, IGNORE, type ConvertSummary, type ImportLimits } from './common.js';
export { fillCircle, fillPolygon, type RasterLimits } from './polygon.js';
export { decodeRleString, encodeRleString, maskToRle, paintRle } from './rle.js';
