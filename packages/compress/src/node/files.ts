import { readFileSync } from 'node:fs';
import { ModelError, errorMessage } from '@tamp/core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { loadLayersModelFile } from '@tamp/core/node';
import { type TampModel, decodeTampModel } from '../format/tamp-format.js';
import { loadTampAsLayersModel } from '../tfjs-bridge.js';

export function readTampFile(file: string): TampModel {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new ModelError('MODEL_NOT_FOUND', `${file}: cannot read (${errorMessage(error)})`, { cause: error });
  }
  return decodeTampModel(bytes, file);
}

/** A model.json or a .tamp file as a tfjs LayersModel (float32 weights). */
export async function loadAnyModel(file: string): Promise<tfl.LayersModel> {
  if (file.endsWith('.tamp')) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      throw new ModelError('MODEL_NOT_FOUND', `${file}: cannot read (${errorMessage(error)})`, { cause: error });
    }
    return loadTampAsLayersModel(bytes, file);
  }
  return loadLayersModelFile(file);
}
