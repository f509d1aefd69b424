import type * as tfl from '@tensorflow/tfjs-layers';
import { loadLayersModelFile, readUserFile } from '@tamp/core/node';
import { type TampModel, decodeTampModel } from '../format/tamp-format.js';
import { loadTampAsLayersModel } from '../tfjs-bridge.js';

const TAMP_FILE = { expected: 'a .tamp model file', notFound: 'MODEL_NOT_FOUND', inFolder: ['model.tamp'] } as const;

export function readTampFile(file: string): TampModel {
  return decodeTampModel(readUserFile(file, TAMP_FILE), file);
}

/** A model.json or a .tamp file as a tfjs LayersModel (float32 weights). */
export async function loadAnyModel(file: string): Promise<tfl.LayersModel> {
  if (file.endsWith('.tamp')) return loadTampAsLayersModel(readUserFile(file, TAMP_FILE), file);
  return loadLayersModelFile(file);
}
