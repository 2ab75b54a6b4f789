// Class names and colour palettes of the built-in datasets, plus colourizing a label map.
// Pure data and arithmetic: reports, the CLI and the web page all draw with these.

/** An 8-bit RGB colour. */
export type RGB = [number, number, number];

/**
 * The PASCAL VOC palette: colour `i` spreads the bits of `i` over R, G and B, most significant first.
 * All 256 colours are distinct, so a VOC colour maps back to exactly one index (255 is (224, 224, 192)).
 * @param n how many colours, default 256
 * @example vocPalette(3) // [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
 */
export function vocPalette(n = 256): RGB[] {
  const out: RGB[] = [];
  for (let i = 0; i < n; i++) {
    let c = i;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let j = 0; j < 8; j++) {
      r |= (c & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    out.push([r, g, b]);
  }
  return out;
}

/** The 256-colour VOC palette (see {@link vocPalette}). */
export const VOC_PALETTE: readonly RGB[] = Object.freeze(vocPalette(256));

/** PASCAL VOC 2012's 21 classes, in label order. */
export const VOC_CLASSES: readonly string[] = Object.freeze([
  'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
  'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
]);

/** CamVid's 11 classes (SegNet version), in label order; label 11 is void. */
export const CAMVID_CLASSES: readonly string[] = Object.freeze([
  'Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist',
]);

/** CamVid's class colours (SegNet tutorial), in label order. */
export const CAMVID_COLORS: readonly RGB[] = Object.freeze([
  [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
  [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192],
] as RGB[]);

/** Cityscapes' 19 evaluation classes, in train-ID order. */
export const CITYSCAPES_CLASSES: readonly string[] = Object.freeze([
  'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation', 'terrain',
  'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle',
]);

/** Cityscapes' colours for the 19 train IDs (cityscapesScripts' labels.py). */
export const CITYSCAPES_COLORS: readonly RGB[] = Object.freeze([
  [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153], [250, 170, 30],
  [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142],
  [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32],
] as RGB[]);

/**
 * Paints a label map: pixel `i` gets `colors[labels[i]]`, or `ignoreColor` (default black) for labels without a colour.
 * @returns HWC RGB bytes, `labels.length * 3` long
 * @example colorize(new Uint8Array([0, 1, 255]), VOC_PALETTE.slice(0, 21))
 */
export function colorize(labels: ArrayLike<number>, colors: readonly RGB[], ignoreColor: RGB = [0, 0, 0]): Uint8Array {
  const out = new Uint8Array(labels.length * 3);
  for (let i = 0; i < labels.length; i++) {
    const c = colors[labels[i]] ?? ignoreColor;
    out[3 * i] = c[0];
    out[3 * i + 1] = c[1];
    out[3 * i + 2] = c[2];
  }
  return out;
}
