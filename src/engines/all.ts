// Registers every engine with the agent. Each engine module calls registerEngine on import.
import './postgres/index.js';
import './redis/index.js';
import '../aws/providers.js';
