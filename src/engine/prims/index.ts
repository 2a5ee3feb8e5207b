// Registers every primitive (import for side effects).
import './elementwise.js';
import './shape.js';
import './linalg.js';
import './conv.js';
import './attention.js';
