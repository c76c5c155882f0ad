/** Neither dropout nor weight drop, which slow a small model's learning of a short text a test trains on. */
export const NO_REGULARISATION = ['--dropout', '0', '--weight-drop', '0'];

// The trainer's flags for a model that learns a short repeated text in seconds, for tests that need a trained model
// (the server's and the real editor's) rather than a random one.
export const TINY_TRAINING_FLAGS = [
  '--epochs',
  '6',
  '--layers',
  '1',
  '--hidden',
  '48',
  '--embed',
  '16',
  '--seq',
  '32',
  '--batch',
  '8',
  '--lr',
  '0.01',
  ...NO_REGULARISATION,
];
