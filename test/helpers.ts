/** Shared test helpers: where the Telco file is, and small data sets made in memory. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const TELCO_CSV = fileURLToPath(new URL('../../shared/data/telco-customer-churn.csv', import.meta.url));
export const HAVE_TELCO = existsSync(TELCO_CSV);
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const COORDINATOR_BIN = fileURLToPath(new URL('../bin/coordinator.js', import.meta.url));

/** Telco preprocessing options, as in examples/telco-churn.yaml. */
export const TELCO_PREPROCESS = {
  drop: ['customerID'],
  numeric: ['TotalCharges'],
  categorical: [],
  label: { column: 'Churn', type: 'binary' as const, positive: 'Yes', negative: 'No' },
};
