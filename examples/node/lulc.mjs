#!/usr/bin/env node
// lulc-edge from Node.js: map a 13-band Sentinel-2 GeoTIFF with the lulc-edge ONNX model.
//
//   node lulc.mjs MODEL.onnx SCENE.tif OUT_PREFIX
//
// Writes OUT_PREFIX.class.bin (uint8, row-major, height*width; 255 = nodata) and OUT_PREFIX.json
// (size, georeferencing, class table with pixel counts). Everything about the model (band order,
// alignment, classes, colours, nodata) is read from the ONNX file's own metadata; the feature
// recipe (NDVI/NDBI/NDWI, casts, NaN handling) is inside the graph, so nothing is re-implemented.
//
// Like `lulc-edge run` with one whole-scene tile: the scene is padded with zeros at the bottom and
// right up to a multiple of the model's alignment, the graph runs once, and the result is cropped.
// The whole scene is held in memory: this is an example for scenes of a few megapixels, not a
// replacement for the tiled Python runtime on full 10980 x 10980 tiles.

import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

class CliError extends Error {}

function fail(msg) {
  throw new CliError(msg);
}

// ------------------------------------------------------------------------ ONNX metadata_props

/** Read a protobuf varint at buf[pos]; returns [value, nextPos]. Safe up to 2^53. */
function readVarint(buf, pos) {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, pos];
    scale *= 128;
  }
  throw new Error('varint too long');
}

/** Walk one protobuf message; calls visit(field, wireType, valueOrSubarray) for each field. */
function walkMessage(buf, visit) {
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      let v;
      [v, pos] = readVarint(buf, pos);
      visit(field, wire, v);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      if (pos + len > buf.length) throw new Error('truncated field');
      visit(field, wire, buf.subarray(pos, pos + len));
      pos += len;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  if (pos !== buf.length) throw new Error('truncated message');
}

/**
 * ModelProto.metadata_props (field 14), each a StringStringEntryProto (key = 1, value = 2).
 * onnxruntime-node does not expose custom metadata, and the walk is a few lines.
 */
export function onnxMetadataProps(bytes) {
  const dec = new TextDecoder('utf-8');
  const props = {};
  walkMessage(bytes, (field, wire, value) => {
    if (field !== 14 || wire !== 2) return;
    let k = '';
    let v = '';
    walkMessage(value, (f, w, x) => {
      if (w !== 2) return;
      if (f === 1) k = dec.decode(x);
      else if (f === 2) v = dec.decode(x);
    });
    props[k] = v;
  });
  return props;
}

/** The lulc_edge.* contract entries (JSON-decoded, prefix stripped) and what we need from them. */
function readContract(modelPath, bytes) {
  let props;
  try {
    props = onnxMetadataProps(bytes);
  } catch (e) {
    fail(`${modelPath}: not a valid ONNX file (${e.message})`);
  }
  const meta = {};
  for (const [k, v] of Object.entries(props)) {
    if (!k.startsWith('lulc_edge.')) continue;
    try {
      meta[k.slice('lulc_edge.'.length)] = JSON.parse(v);
    } catch {
      fail(`${modelPath}: metadata ${k} is not JSON`);
    }
  }
  for (const need of ['input', 'classes', 'nodata', 'alignment']) {
    if (!(need in meta)) {
      fail(`${modelPath}: not a lulc-edge model (metadata lulc_edge.${need} missing); ` +
           'export one with export/to_onnx.py');
    }
  }
  const alignment = Number(meta.alignment);
  if (!Number.isInteger(alignment) || alignment <= 0) {
    fail(`${modelPath}: invalid lulc_edge.alignment ${JSON.stringify(meta.alignment)}`);
  }
  return {
    meta,
    inputName: meta.input.name || 'bands',
    bands: meta.input.bands,
    classes: meta.classes,
    nodata: meta.nodata,
    alignment,
  };
}

// ------------------------------------------------------------------------------ GeoTIFF input

const BAND_RE = /^B0?([1-9]|1[0-2])$|^B(8A)$|^(SCL)$/i;

/** Canonical band name as the Python runtime spells it ("B01" -> "B1", "b8a" -> "B8A"). */
function normalizeBand(name) {
  const m = BAND_RE.exec(String(name).trim());
  if (!m) return null;
  if (m[1]) return `B${Number(m[1])}`;
  return m[2] ? 'B8A' : 'SCL';
}

async function tagValue(image, name) {
  const fd = image.fileDirectory;
  if (!fd.hasTag(name)) return undefined;
  return typeof fd.loadValue === 'function' ? fd.loadValue(name) : fd.getValue(name);
}

/** Which sample of the file holds each model band: by band descriptions, else by position. */
async function mapBands(image, scenePath, bands) {
  const count = image.getSamplesPerPixel();
  const named = {};
  for (let s = 0; s < count; s++) {
    let md = null;
    try {
      md = await image.getGDALMetadata(s);
    } catch {
      md = null;
    }
    const b = md && md.DESCRIPTION ? normalizeBand(md.DESCRIPTION) : null;
    if (b && !(b in named)) named[b] = s;
  }
  if (bands.every((b) => b in named)) {
    return { index: bands.map((b) => named[b]), how: 'band descriptions' };
  }
  if (count === bands.length) {
    return { index: bands.map((_, i) => i), how: 'position' };
  }
  fail(`${scenePath}: has ${count} bands; expected ${bands.length} (${bands.join(',')}) ` +
       'in model order or named by band descriptions');
}

/** GDAL-style geotransform [x0, dx, rx, y0, ry, dy] of the pixel corners, or null. */
async function geotransform(image) {
  const keys = image.getGeoKeys() || {};
  const mt = await tagValue(image, 'ModelTransformation');
  const tie = await tagValue(image, 'ModelTiepoint');
  const scale = await tagValue(image, 'ModelPixelScale');
  let gt = null;
  if (mt && mt.length >= 16) {
    gt = [mt[3], mt[0], mt[1], mt[7], mt[4], mt[5]];
  } else if (tie && tie.length >= 6 && scale && scale.length >= 2) {
    const [i, j, , x, y] = tie;
    gt = [x - i * scale[0], scale[0], 0, y + j * scale[1], 0, -scale[1]];
  }
  if (gt && keys.GTRasterTypeGeoKey === 2) {
    // PixelIsPoint: GDAL reports the corner of the pixel, half a pixel up-left of its centre.
    gt[0] -= 0.5 * gt[1] + 0.5 * gt[2];
    gt[3] -= 0.5 * gt[4] + 0.5 * gt[5];
  }
  return gt;
}

/** EPSG code of the CRS and whether it is projected, or null (no CRS, or a user-defined one). */
function crsOf(image) {
  const keys = image.getGeoKeys() || {};
  for (const [k, projected] of [['ProjectedCSTypeGeoKey', true], ['GeographicTypeGeoKey', false]]) {
    const v = keys[k];
    if (Number.isInteger(v) && v > 0 && v !== 32767) return { epsg: v, projected };
  }
  return null;
}

/**
 * Read the scene into a zero-padded (1, 13, ph, pw) uint16 buffer in model band order.
 * Pixels where a reflectance band equals the file's nodata value become nodata (all bands 0),
 * as the Python runtime does.
 */
async function readScene(scenePath, contract) {
  let st;
  try {
    st = statSync(scenePath);
  } catch {
    fail(`${scenePath}: no such file`);
  }
  if (!st.isFile()) fail(`${scenePath}: not a file`);
  const { fromFile } = await import('geotiff');
  let image;
  try {
    const tiff = await fromFile(scenePath);
    image = await tiff.getImage(0);
  } catch (e) {
    fail(`${scenePath}: cannot read as GeoTIFF (${e.message})`);
  }
  const width = image.getWidth();
  const height = image.getHeight();
  const { index, how } = await mapBands(image, scenePath, contract.bands);
  for (const s of new Set(index)) {
    const bits = image.getBitsPerSample(s);
    const fmt = image.getSampleFormat(s);
    if (bits !== 16 || fmt !== 1) {
      const kind = { 1: 'uint', 2: 'int', 3: 'float' }[fmt] || `format ${fmt} `;
      fail(`${scenePath}: band ${s + 1} is ${kind}${bits}; this example reads uint16 digital ` +
           'numbers only (lulc-edge run converts other types)');
    }
  }
  let rasters;
  try {
    rasters = await image.readRasters({ samples: [...new Set(index)], interleave: false });
  } catch (e) {
    fail(`${scenePath}: read failed (${e.message})`);
  }
  const order = [...new Set(index)];
  const planes = index.map((s) => rasters[order.indexOf(s)]);

  const a = contract.alignment;
  const ph = Math.ceil(height / a) * a;
  const pw = Math.ceil(width / a) * a;
  const nb = contract.bands.length;
  const data = new Uint16Array(nb * ph * pw); // zeros: the padding is nodata
  for (let b = 0; b < nb; b++) {
    const src = planes[b];
    const base = b * ph * pw;
    for (let y = 0; y < height; y++) {
      data.set(src.subarray(y * width, (y + 1) * width), base + y * pw);
    }
  }
  const nd = image.getGDALNoData();
  if (nd !== null && Number.isFinite(nd)) {
    const refl = contract.bands.map((n, i) => [n, i]).filter(([n]) => n !== 'SCL').map(([, i]) => i);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = y * pw + x;
        if (refl.some((b) => data[b * ph * pw + p] === nd)) {
          for (let b = 0; b < nb; b++) data[b * ph * pw + p] = 0;
        }
      }
    }
  }
  return {
    data, width, height, ph, pw, bandMapping: how,
    geotransform: await geotransform(image), crs: crsOf(image),
  };
}

// ----------------------------------------------------------------------------------- run

function hexToAnsi(hex) {
  const c = String(hex).replace('#', '');
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(c.slice(i, i + 2), 16));
  if ([r, g, b].some(Number.isNaN)) return '';
  return `\x1b[48;2;${r};${g};${b}m  \x1b[0m `;
}

/**
 * The class map as a georeferenced GeoTIFF (uint8, one uncompressed strip, nodata 255) with
 * geotiff.js's writer, which cannot write a colour table (the colours are in the JSON).
 * null where the scene has no geotransform or no EPSG code.
 */
async function classGeoTiff(classes, width, height, scene, contract) {
  const gt = scene.geotransform;
  if (!gt || !scene.crs) return null;
  const { writeArrayBuffer } = await import('geotiff');
  const tags = {
    width,
    height,
    PhotometricInterpretation: 1,
    GDAL_NODATA: String(contract.nodata.value),
    GTModelTypeGeoKey: scene.crs.projected ? 1 : 2,
    GTRasterTypeGeoKey: 1,
    [scene.crs.projected ? 'ProjectedCSTypeGeoKey' : 'GeographicTypeGeoKey']: scene.crs.epsg,
  };
  if (gt[2] === 0 && gt[4] === 0) {
    tags.ModelPixelScale = [gt[1], -gt[5], 0];
    tags.ModelTiepoint = [0, 0, 0, gt[0], gt[3], 0];
  } else {
    tags.ModelTransformation = [gt[1], gt[2], 0, gt[0], gt[4], gt[5], 0, gt[3],
      0, 0, 0, 0, 0, 0, 0, 1];
  }
  return new Uint8Array(writeArrayBuffer(classes, tags));
}

function writeAtomic(path, data) {
  const tmp = `${dirname(path)}/.${basename(path)}.partial`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

async function main(argv) {
  if (argv.length !== 3 || argv.some((a) => a === '-h' || a === '--help')) {
    console.error('usage: node lulc.mjs MODEL.onnx SCENE.tif OUT_PREFIX');
    return argv.some((a) => a === '-h' || a === '--help') ? 0 : 2;
  }
  const [modelPath, scenePath, prefix] = argv;
  const t0 = performance.now();

  let bytes;
  try {
    bytes = readFileSync(modelPath);
  } catch (e) {
    fail(`${modelPath}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  const contract = readContract(modelPath, bytes);
  const scene = await readScene(scenePath, contract);
  const tRead = performance.now();

  const ort = await import('onnxruntime-node');
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3,
    });
  } catch (e) {
    fail(`${modelPath}: cannot load model (${String(e.message).split('\n')[0]})`);
  }
  if (!session.inputNames.includes(contract.inputName) || !session.outputNames.includes('class')) {
    fail(`${modelPath}: graph lacks input '${contract.inputName}' or output 'class'`);
  }
  const { data, width, height, ph, pw } = scene;
  const input = new ort.Tensor('uint16', data, [1, contract.bands.length, ph, pw]);
  let out;
  try {
    out = await session.run({ [contract.inputName]: input }, ['class']);
  } catch (e) {
    fail(`${modelPath}: inference failed (${String(e.message).split('\n')[0]})`);
  }
  const tRun = performance.now();
  const padded = out.class.data; // Uint8Array (1, ph, pw)
  const classes = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    classes.set(padded.subarray(y * pw, y * pw + width), y * width);
  }
  const counts = new Array(256).fill(0);
  for (let i = 0; i < classes.length; i++) counts[classes[i]]++;

  const total = width * height;
  const table = contract.classes.map((c) => ({ ...c, pixels: counts[c.value] }));
  const nodata = { ...contract.nodata, pixels: counts[contract.nodata.value] };
  const known = new Set([...table.map((c) => c.value), nodata.value]);
  const unknown = counts.map((n, v) => [v, n]).filter(([v, n]) => n && !known.has(v));
  const gt = scene.geotransform;
  const binPath = `${prefix}.class.bin`;
  const summary = {
    width,
    height,
    dtype: 'uint8',
    layout: 'row-major (height, width)',
    class_file: basename(binPath),
    epsg: scene.crs ? scene.crs.epsg : null,
    geotransform: gt,
    origin: gt ? [gt[0], gt[3]] : null,
    resolution: gt ? [gt[1], gt[5]] : null,
    classes: table,
    nodata,
    unexpected_values: Object.fromEntries(unknown),
    input: {
      path: resolve(scenePath), band_mapping: scene.bandMapping, bands: contract.bands,
      padded_to: [ph, pw], alignment: contract.alignment,
    },
    model: {
      path: resolve(modelPath),
      precision: contract.meta.precision ?? null,
      weights: contract.meta.weights ?? null,
    },
    runtime: { onnxruntime_node: ort.env.versions?.node ?? null, node: process.versions.node },
    seconds: {
      read: (tRead - t0) / 1000, inference: (tRun - tRead) / 1000,
      total: (performance.now() - t0) / 1000,
    },
  };
  const tifPath = `${prefix}.class.tif`;
  const tif = await classGeoTiff(classes, width, height, scene, contract);
  summary.geotiff = tif ? basename(tifPath) : null;
  try {
    mkdirSync(dirname(resolve(binPath)), { recursive: true });
    writeAtomic(binPath, classes);
    if (tif) writeAtomic(tifPath, tif);
    writeAtomic(`${prefix}.json`, `${JSON.stringify(summary, null, 2)}\n`);
  } catch (e) {
    fail(`${prefix}: cannot write output (${e.code || e.message})`);
  }

  const tty = process.stdout.isTTY;
  console.log(`${basename(scenePath)}: ${width}x${height} px, ${contract.bands.length} bands ` +
              `(${scene.bandMapping}), padded to ${pw}x${ph}, inference ` +
              `${((tRun - tRead) / 1000).toFixed(2)} s`);
  const w = Math.max(...[...table, nodata].map((c) => c.name.length));
  for (const c of [...table, nodata]) {
    const pct = total ? (100 * c.pixels) / total : 0;
    console.log(`  ${tty ? hexToAnsi(c.color) : ''}${String(c.value).padStart(3)} ` +
                `${c.name.padEnd(w)} ${c.color}  ${String(c.pixels).padStart(10)} px ` +
                `${pct.toFixed(2).padStart(6)} %`);
  }
  const written = [binPath, tif ? tifPath : null, `${prefix}.json`].filter(Boolean);
  console.log(`wrote ${written.join(', ')}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => {
    if (e instanceof CliError) {
      console.error(`error: ${e.message}`);
    } else {
      console.error(`error: ${e && e.stack ? e.stack.split('\n')[0] : e}`);
    }
    process.exitCode = 1;
  },
);
