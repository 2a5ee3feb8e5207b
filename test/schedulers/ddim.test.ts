import { schedulerParitySuite } from './parity_suite.js';

schedulerParitySuite('ddim');
