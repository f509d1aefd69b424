import { demoConfig } from '../vite.shared.js';

export default demoConfig(5173);
