/**
 * Demo data: a synthetic data set with the Telco Customer Churn schema (same 21 columns, same
 * categories, blank TotalCharges for new customers), drawn from a fixed seed. Churn follows a
 * logistic model of contract, tenure, internet service, payment method and support, so a model
 * has something real to learn (about a quarter of customers churn, as in the real data).
 */
import { Rng } from '../math/rng.js';
import { csvCell } from './csv.js';

export const TELCO_COLUMNS = [
  'customerID', 'gender', 'SeniorCitizen', 'Partner', 'Dependents', 'tenure', 'PhoneService', 'MultipleLines',
  'InternetService', 'OnlineSecurity', 'OnlineBackup', 'DeviceProtection', 'TechSupport', 'StreamingTV',
  'StreamingMovies', 'Contract', 'PaperlessBilling', 'PaymentMethod', 'MonthlyCharges', 'TotalCharges', 'Churn',
] as const;

const PAYMENT = ['Electronic check', 'Mailed check', 'Bank transfer (automatic)', 'Credit card (automatic)'];

function yesNo(rng: Rng, pYes: number): string {
  return rng.next() < pYes ? 'Yes' : 'No';
}

/** Makes `rows` customers as CSV text (header included). */
export function telcoDemoCsv(rows = 7043, seed = 7): string {
  const rng = new Rng(seed);
  const lines: string[] = [TELCO_COLUMNS.join(',')];
  for (let i = 0; i < rows; i++) {
    const id = `${String(1000 + rng.int(9000))}-${Array.from({ length: 5 }, () => String.fromCharCode(65 + rng.int(26))).join('')}`;
    const gender = rng.next() < 0.5 ? 'Male' : 'Female';
    const senior = rng.next() < 0.16 ? 1 : 0;
    const partner = yesNo(rng, 0.48);
    const dependents = yesNo(rng, partner === 'Yes' ? 0.5 : 0.12);
    const contract = rng.choice(['Month-to-month', 'One year', 'Two year'], [0.55, 0.21, 0.24]);
    const tenureMean = contract === 'Month-to-month' ? 18 : contract === 'One year' ? 42 : 57;
    // New customers (tenure 0, blank TotalCharges) are rare, as in the real data (11 of 7043).
    const tenure = rng.next() < 0.0016 ? 0 : Math.max(1, Math.min(72, Math.round(tenureMean + rng.normal() * 16)));
    const phone = yesNo(rng, 0.9);
    const multiple = phone === 'No' ? 'No phone service' : yesNo(rng, 0.47);
    const internet = rng.choice(['DSL', 'Fiber optic', 'No'], [0.34, 0.44, 0.22]);
    const service = (p: number): string => (internet === 'No' ? 'No internet service' : yesNo(rng, p));
    const security = service(0.37);
    const backup = service(0.44);
    const protection = service(0.44);
    const support = service(0.37);
    const tv = service(0.5);
    const movies = service(0.5);
    const paperless = yesNo(rng, 0.59);
    const payment = rng.choice(PAYMENT, [0.34, 0.23, 0.22, 0.21]);
    const addOns = [security, backup, protection, support, tv, movies].filter((v) => v === 'Yes').length;
    const monthly =
      18 + (phone === 'Yes' ? 2 : 0) + (multiple === 'Yes' ? 5 : 0) +
      (internet === 'DSL' ? 25 : internet === 'Fiber optic' ? 50 : 0) + addOns * 5 + rng.normal() * 2;
    const monthlyCharges = Math.max(18.25, Math.round(monthly * 20) / 20);
    const totalCharges = tenure === 0 ? ' ' : (monthlyCharges * tenure * (0.95 + 0.1 * rng.next())).toFixed(2);
    const logit =
      -1.75 +
      (contract === 'Month-to-month' ? 1.3 : contract === 'One year' ? -0.3 : -1.6) -
      0.035 * tenure +
      (internet === 'Fiber optic' ? 0.9 : internet === 'No' ? -0.8 : 0) +
      (payment === 'Electronic check' ? 0.6 : 0) +
      (support === 'No' ? 0.4 : 0) +
      (security === 'No' ? 0.3 : 0) +
      (senior ? 0.3 : 0) +
      (paperless === 'Yes' ? 0.3 : 0) +
      (partner === 'Yes' ? -0.15 : 0) +
      rng.normal() * 0.3;
    const churn = rng.next() < 1 / (1 + Math.exp(-logit)) ? 'Yes' : 'No';
    const record = [
      id, gender, String(senior), partner, dependents, String(tenure), phone, multiple, internet, security, backup,
      protection, support, tv, movies, contract, paperless, payment, monthlyCharges.toFixed(2), totalCharges, churn,
    ];
    lines.push(record.map(csvCell).join(','));
  }
  return `${lines.join('\n')}\n`;
}
