// policy-service: one service process, started from the config file named by --config.
import './instrument';
import { startPolicyService } from '@portcullis/policy';
import { runServiceMain } from '@portcullis/platform';

runServiceMain('policy-service', startPolicyService);
