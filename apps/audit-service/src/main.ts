// audit-service: one service process, started from the config file named by --config.
import './instrument';
import { startAuditService } from '@portcullis/audit';
import { runServiceMain } from '@portcullis/platform';

runServiceMain('audit-service', startAuditService);
